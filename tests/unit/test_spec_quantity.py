"""Kubernetes quantities and Go durations (SPEC 11.2, 11.3)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cortex.spec.duration import format_duration, parse_duration, to_nanos
from cortex.spec.models import Compute
from cortex.spec.quantity import Quantity


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("200m", Decimal("0.2"), "200m"),
        ("1", Decimal(1), "1"),
        (1, Decimal(1), "1"),
        (0.5, Decimal("0.5"), "500m"),
        ("0.5", Decimal("0.5"), "500m"),
        ("1000m", Decimal(1), "1"),
        ("1Gi", Decimal(2**30), "1Gi"),
        ("1.5Gi", Decimal(3 * 2**29), "1536Mi"),  # 1.5 * 1024 Mi
        ("1536Ki", Decimal(1536 * 1024), "1536Ki"),  # 1.5Mi is not an integer mantissa
        ("1.5Ki", Decimal(1536), "1536"),  # no binary suffix fits: plain
        ("2048Mi", Decimal(2**31), "2Gi"),
        ("2000", Decimal(2000), "2k"),
        ("1500", Decimal(1500), "1500"),
        ("2G", Decimal(2 * 10**9), "2G"),
        ("1e3", Decimal(1000), "1k"),
        ("5E-3", Decimal("0.005"), "5m"),
        ("1E", Decimal(10**18), "1E"),
        ("100u", Decimal("0.0001"), "100u"),
        ("3n", Decimal("0.000000003"), "3n"),
        ("+2", Decimal(2), "2"),
        (".5", Decimal("0.5"), "500m"),
        ("0", Decimal(0), "0"),
    ],
)
def test_parse_and_canonical(text: str | float, value: Decimal, canonical: str) -> None:
    q = Quantity.parse(text)
    assert q.value == value
    assert str(q) == canonical
    assert Quantity.parse(str(q)) == q


@pytest.mark.parametrize(
    "text", ["", "abc", "1 Gi", "1Gb", "1.2.3", "m", "1KiB", "--1", True, None]
)
def test_invalid_quantities(text: object) -> None:
    with pytest.raises(ValueError, match="invalid kubernetes quantity"):
        Quantity.parse(text)  # type: ignore[arg-type]


def test_milli_and_int_round_up() -> None:
    assert Quantity.parse("0.5").milli() == 500
    assert Quantity.parse("1.0001").milli() == 1001  # 1000.1 rounds up
    assert int(Quantity.parse("1Gi")) == 2**30
    assert int(Quantity.parse("1500m")) == 2


def test_ordering_and_hashing_by_value() -> None:
    assert Quantity.parse("500m") == Quantity.parse("0.5")
    assert Quantity.parse("1Mi") > Quantity.parse("1M")  # 1048576 > 1000000
    assert Quantity.parse("20m") <= Quantity.parse("0.02")
    assert sorted([Quantity.parse("2"), Quantity.parse("300m")]) == [
        Quantity.parse("300m"),
        Quantity.parse("2"),
    ]
    assert len({Quantity.parse("1k"), Quantity.parse("1000")}) == 1
    assert repr(Quantity.parse("1Gi")) == "Quantity('1Gi')"


def test_quantity_is_immutable() -> None:
    q = Quantity.parse("1")
    with pytest.raises(AttributeError):
        q.value = Decimal(2)


def test_quantity_in_a_model_serializes_canonically() -> None:
    compute = Compute(cpu="0.25", mem=Quantity.parse("1024Mi"))
    assert compute.model_dump(mode="json")["cpu"] == "250m"
    assert compute.model_dump(mode="json")["mem"] == "1Gi"
    assert Compute().cpu == Quantity.parse("200m")


SUFFIXES = ["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "n", "u"]


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(SUFFIXES))
def test_canonical_round_trip(number: int, suffix: str) -> None:
    q = Quantity.parse(f"{number}{suffix}")
    again = Quantity.parse(str(q))
    assert again == q
    assert str(again) == str(q)


@given(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False))
def test_decimal_round_trip(number: Decimal) -> None:
    q = Quantity.parse(str(number))
    assert q.value == number
    assert Quantity.parse(str(q)) == q


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "go"),
    [
        ("1m30s", timedelta(seconds=90), "1m30s"),
        ("10s", timedelta(seconds=10), "10s"),
        ("5m", timedelta(minutes=5), "5m0s"),
        ("1h", timedelta(hours=1), "1h0m0s"),
        ("1.5h", timedelta(minutes=90), "1h30m0s"),
        ("300ms", timedelta(milliseconds=300), "300ms"),
        ("1500us", timedelta(microseconds=1500), "1.5ms"),
        ("2µs", timedelta(microseconds=2), "2µs"),
        ("1h0m0.5s", timedelta(hours=1, milliseconds=500), "1h0m0.5s"),
        ("0", timedelta(0), "0s"),
        ("0s", timedelta(0), "0s"),
        ("-1s", timedelta(seconds=-1), "-1s"),
        ("90s", timedelta(seconds=90), "1m30s"),
    ],
)
def test_durations(text: str, expected: timedelta, go: str) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == go


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1m30", "1d", "m1", "1 s", "--1s"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_to_nanos() -> None:
    assert to_nanos(timedelta(seconds=60)) == 60_000_000_000
    assert to_nanos(timedelta(microseconds=3)) == 3_000


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_duration_round_trip(micros: int) -> None:
    d = timedelta(microseconds=micros)
    assert parse_duration(format_duration(d)) == d
