"""Go duration strings (``"1m30s"``, ``"10s"``, ``"5m"``, ``"1.5h"``, ``"300ms"``) <-> timedelta.

Grammar (Go ``time.ParseDuration``): an optional sign, then one or more ``<decimal><unit>`` with
unit one of ``ns us µs ms s m h``; the bare string ``"0"`` is also valid. ``timedelta`` keeps
microseconds, so sub-microsecond parts are truncated.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = r"(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
_WHOLE = re.compile(rf"^[+-]?(?:{_PART})+$")
_PARTS = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string; ValueError when it is not one."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return timedelta(0)
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {text!r}")
    total = sum(Decimal(num) * _UNIT_NS[unit] for num, unit in _PARTS.findall(text))
    nanos = int(total) * (-1 if text.startswith("-") else 1)
    return timedelta(microseconds=nanos // 1_000 if nanos >= 0 else -((-nanos) // 1_000))


def to_nanos(d: timedelta) -> int:
    """Whole nanoseconds in ``d`` (SPEC 10.4 serializes durations as integer ns)."""
    return (d // timedelta(microseconds=1)) * 1_000


def format_duration(d: timedelta) -> str:
    """Go's ``Duration.String()``: ``"1m0s"``, ``"1h30m0s"``, ``"1.5s"``, ``"300ms"``, ``"0s"``."""
    nanos = to_nanos(d)
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000)):
            if nanos >= size:
                return sign + _fraction(nanos, size) + unit
        return f"{sign}{nanos}ns"
    hours, rest = divmod(nanos, _UNIT_NS["h"])
    minutes, rest = divmod(rest, _UNIT_NS["m"])
    text = _fraction(rest, _UNIT_NS["s"]) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _fraction(nanos: int, unit: int) -> str:
    whole, frac = divmod(nanos, unit)
    if frac == 0:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"
