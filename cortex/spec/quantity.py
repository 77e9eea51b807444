"""Kubernetes resource quantities (``"200m"``, ``"1Gi"``, ``"2G"``, ``"1e3"``).

Grammar (k8s ``resource.Quantity``): ``<signed decimal number><suffix>`` with suffix one of the
binary ``Ki Mi Gi Ti Pi Ei`` (powers of 1024), the decimal ``n u m "" k M G T P E`` or an exponent
``e<int>`` / ``E<int>``. ``value`` is exact (a ``Decimal`` in base units: cores, bytes).

Canonical form (``str``) follows Kubernetes: a quantity written with a binary suffix prints with
the largest binary suffix that keeps an integer mantissa (``1.5Gi`` -> ``1536Mi``); everything
else prints with the largest decimal SI suffix that keeps an integer mantissa (``0.5`` ->
``500m``, ``2000`` -> ``2k``), rounding up to nano units beyond that precision. Exponent input
prints in SI form (``1e3`` -> ``1k``), a simplification of k8s, which keeps the exponent form.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import total_ordering
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SI_BY_EXP = {exp: suffix for suffix, exp in _DECIMAL.items()}
_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$"
)


@total_ordering
class Quantity:
    """An exact, immutable resource amount; compares and hashes by value."""

    __slots__ = ("_binary", "value")

    value: Decimal
    _binary: bool

    def __init__(self, value: Decimal, *, binary: bool = False) -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_binary", binary)

    def __setattr__(self, name: str, val: object) -> None:
        raise AttributeError("Quantity is immutable")

    @classmethod
    def parse(cls, v: str | int | float) -> Quantity:
        """Parse a k8s quantity; YAML numbers count as their decimal text. ValueError if invalid."""
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError(f"invalid kubernetes quantity: {v!r}")
        text = v.strip() if isinstance(v, str) else repr(v)
        match = _RE.match(text)
        if match is None:
            raise ValueError(f"invalid kubernetes quantity: {v!r}")
        try:
            number = Decimal(match["num"])
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"invalid kubernetes quantity: {v!r}") from exc
        suffix = match["suffix"] or ""
        if match["exp"]:
            return cls(number.scaleb(int(match["exp"][1:])))
        if suffix in _BINARY:
            return cls(number * (1024 ** _BINARY[suffix]), binary=True)
        return cls(number.scaleb(_DECIMAL[suffix]))

    def milli(self) -> int:
        """The value in thousandths, rounded up (k8s ``MilliValue``): cpu ``0.5`` -> 500."""
        return math.ceil(self.value * 1000)

    def __int__(self) -> int:
        """The value rounded up to a whole unit (k8s ``Value``): bytes for memory."""
        return math.ceil(self.value)

    def __str__(self) -> str:
        if self._binary and self.value == self.value.to_integral_value() and self.value >= 1024:
            return _binary_str(int(self.value))
        return _decimal_str(self.value)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value == other.value

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate from a Quantity or its text; serialize as the canonical string."""
        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def _coerce(v: Any) -> Quantity:
    return v if isinstance(v, Quantity) else Quantity.parse(v)


def _binary_str(value: int) -> str:
    for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        unit = 1024**power
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)  # e.g. 1.5Ki = 1536: no binary suffix keeps an integer mantissa


def _decimal_str(value: Decimal) -> str:
    if value == 0:
        return "0"
    nanos = math.ceil(value.scaleb(9))  # k8s rounds up to its finest scale
    exp = -9
    while exp < 18 and nanos % 1000 == 0:
        nanos //= 1000
        exp += 3
    return f"{nanos}{_SI_BY_EXP[exp]}"
