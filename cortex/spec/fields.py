"""Readers for the raw YAML map that check one field each and speak SPEC 11.1's messages.

Every reader takes the parent map, the key and the parent's path, and either returns a clean
Python value or raises :class:`FieldError` carrying the full field path (outermost first) and the
user-facing message. ``parse.py`` adds the file and API prefix and raises ``SpecError``.

Conventions (SPEC 11.1): a missing required key -> ``must be defined``; an explicit null where
none is allowed -> ``cannot be null`` (with a hint to remove the key when a default exists); a
wrong type -> ``<value>: invalid type (expected <type>)``; string values are quoted.
"""

from __future__ import annotations

import difflib
import json
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

Path = tuple[str, ...]
DOCS_HINT = "see docs/cortex-yaml.md"
_MISSING: Any = object()
NULL_OPTIONAL = "cannot be null (specify a value, or remove the key to use the default value)"


class FieldError(Exception):
    """One invalid field: ``path`` (outermost first) and the message the user reads."""

    def __init__(self, path: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.path: Path = tuple(path)
        self.message = message

    def render(self) -> str:
        return ": ".join((*self.path, self.message))


def user_str(value: Any) -> str:
    """A value as users wrote it: strings quoted, ``true``/``null``, lists and maps as JSON."""
    if isinstance(value, str | bool) or value is None:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def str_or(values: Sequence[str]) -> str:
    """``"a", "b", or "c"`` (SPEC 11.1's list rendering)."""
    quoted = [json.dumps(v) for v in values]
    if len(quoted) <= 2:
        return " or ".join(quoted)
    return ", ".join(quoted[:-1]) + ", or " + quoted[-1]


def index(i: int) -> str:
    return f"index {i}"


def invalid_type(path: Path, value: Any, expected: str) -> FieldError:
    return FieldError(path, f"{user_str(value)}: invalid type (expected {expected})")


def check_keys(
    m: Mapping[str, Any],
    allowed: Collection[str],
    path: Path,
    *,
    elsewhere: Collection[str] = (),
    kind: str = "",
) -> None:
    """Reject the first key (in file order) that is not ``allowed``.

    A key valid for another kind (``elsewhere``) says so; any other key gets the closest valid
    key as a suggestion, found with difflib.
    """
    for key in m:
        if key in allowed:
            continue
        if key in elsewhere:
            raise FieldError(path, f"key {user_str(key)} is not supported for {kind} kind")
        message = f"key {user_str(key)} is not supported"
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        if close:
            message += f' (did you mean "{close[0]}"?)'
        raise FieldError(path, message)


def as_map(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise invalid_type(path, value, "map")
    return value


def opt_struct(m: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    """A struct that defaults to ``{}`` when absent; explicit null is refused."""
    value = m.get(key, _MISSING)
    if value is _MISSING:
        return {}
    if value is None:
        raise FieldError((*path, key), "cannot be empty or null")
    return as_map(value, (*path, key))


def nullable_struct(m: Mapping[str, Any], key: str, path: Path) -> dict[str, Any] | None:
    """A struct that defaults to null (probes, pre_stop, handlers)."""
    value = m.get(key)
    return None if value is None else as_map(value, (*path, key))


def _present(m: Mapping[str, Any], key: str, path: Path, *, required: bool, nullable: bool) -> Any:
    value = m.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise FieldError((*path, key), "must be defined")
        return _MISSING
    if value is None and not nullable:
        raise FieldError((*path, key), "cannot be null" if required else NULL_OPTIONAL)
    return value


def req_str(m: Mapping[str, Any], key: str, path: Path) -> str:
    value = _present(m, key, path, required=True, nullable=False)
    if not isinstance(value, str):
        raise invalid_type((*path, key), value, "string")
    if value == "":
        raise FieldError((*path, key), "cannot be empty")
    return value


def opt_str(
    m: Mapping[str, Any], key: str, path: Path, default: str | None, *, nullable: bool = True
) -> str | None:
    """An optional string; null means ``default`` when ``nullable``, else ``cannot be null``."""
    value = _present(m, key, path, required=False, nullable=nullable)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, str):
        raise invalid_type((*path, key), value, "string")
    return value


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def req_int(m: Mapping[str, Any], key: str, path: Path) -> int:
    value = _present(m, key, path, required=True, nullable=False)
    if not _is_int(value):
        raise invalid_type((*path, key), value, "integer")
    return int(value)


def opt_int(
    m: Mapping[str, Any], key: str, path: Path, default: int, *, nullable: bool = False
) -> int:
    """An integer with a default; with ``nullable`` an explicit null also means the default."""
    value = _present(m, key, path, required=False, nullable=nullable)
    if value is _MISSING or value is None:
        return default
    if not _is_int(value):
        raise invalid_type((*path, key), value, "integer")
    return int(value)


def opt_float(m: Mapping[str, Any], key: str, path: Path, default: float | None) -> float | None:
    value = _present(m, key, path, required=False, nullable=default is None)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type((*path, key), value, "float")
    return float(value)


def opt_bool(m: Mapping[str, Any], key: str, path: Path, default: bool) -> bool:
    value = _present(m, key, path, required=False, nullable=False)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        raise invalid_type((*path, key), value, "boolean")
    return value


def opt_str_list(
    m: Mapping[str, Any], key: str, path: Path, *, required: bool = False
) -> list[str] | None:
    """A list of strings; absent or null gives None (unless ``required``)."""
    value = _present(m, key, path, required=required, nullable=not required)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_type((*path, key), value, "list of strings")
    return list(value)


def opt_str_map(m: Mapping[str, Any], key: str, path: Path) -> dict[str, str]:
    """A string-to-string map, default ``{}``; scalar values are taken as their text."""
    value = _present(m, key, path, required=False, nullable=False)
    if value is _MISSING:
        return {}
    if not isinstance(value, dict):
        raise invalid_type((*path, key), value, "map of strings to strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, dict | list) or v is None:
            raise invalid_type((*path, key), value, "map of strings to strings")
        out[k] = v if isinstance(v, str) else user_str(v)
    return out


def _num(value: float) -> str:
    """Numbers as Go prints them in bounds messages: ``0`` rather than ``0.0``, ``1.5``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return user_str(value)


def check_range(
    value: float,
    path: Path,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> None:
    """Numeric bounds with SPEC 11.1's wording: ``must be greater than 0 (got -1)``."""
    checks: tuple[tuple[float | None, Callable[[float, float], bool], str], ...] = (
        (gt, operator.gt, "greater than"),
        (ge, operator.ge, "greater than or equal to"),
        (lt, operator.lt, "less than"),
        (le, operator.le, "less than or equal to"),
    )
    for bound, ok, words in checks:
        if bound is not None and not ok(value, bound):
            raise FieldError(path, f"must be {words} {_num(bound)} (got {_num(value)})")


def check_port(value: int, path: Path) -> None:
    """A user port: 1..65535 and not one of the reserved 8888 / 15000 (SPEC 0.2)."""
    check_range(value, path, gt=0, le=65535)
    if value in RESERVED_PORTS:
        raise FieldError(path, f"{value} is not allowed, please use a different value")


RESERVED_PORTS = frozenset({8888, 15000})


def opt_int_or_none(m: Mapping[str, Any], key: str, path: Path) -> int | None:
    """An optional integer whose default is derived elsewhere (absent or null -> None)."""
    value = m.get(key)
    if value is None:
        return None
    if not _is_int(value):
        raise invalid_type((*path, key), value, "integer")
    return int(value)


def req_list(m: Mapping[str, Any], key: str, path: Path, *, min_length: int = 0) -> list[Any]:
    """A required list; null counts as empty (SPEC: ``containers: null`` -> empty -> error)."""
    value = _present(m, key, path, required=True, nullable=True)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise invalid_type((*path, key), value, "list")
    if len(value) < min_length:
        raise FieldError((*path, key), f"must contain at least {min_length} elements")
    return value


def str_and(values: Sequence[str]) -> str:
    """``"a", "b", and "c"``."""
    quoted = [json.dumps(v) for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]
