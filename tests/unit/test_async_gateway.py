"""Request ids and the stored headers of the async gateway."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from cortex.dataplane.async_gateway import (
    canonical_header,
    headers_record,
    new_request_id,
    time_field,
    uuid7,
)


def test_request_ids_are_uuid7_and_strictly_increasing_even_if_the_clock_stands_still() -> None:
    now = 1_700_000_000_123_456_789
    ids = [new_request_id(now) for _ in range(100)] + [new_request_id(now - 10**9)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@given(
    st.lists(
        st.tuples(st.integers(10**18, 2 * 10**18), st.integers(0, 2**62 - 1)),
        min_size=2,
        max_size=20,
        unique_by=lambda x: x[0] // 1000,
    )
)
def test_ids_sort_like_their_times(stamps: list[tuple[int, int]]) -> None:
    # distinct times at least 1 us apart -> distinct 12-bit fractions (1 ms / 4096 = 244 ns)
    ordered = sorted(stamps)
    ids = [uuid7(time_field(t), r) for t, r in ordered]
    assert ids == sorted(ids)


def test_id_carries_its_millisecond_time() -> None:
    now = 1_700_000_000_123_456_789
    rid = uuid7(time_field(now), 0)
    assert uuid.UUID(rid).int >> 80 == now // 1_000_000
    assert uuid.UUID(new_request_id()).int >> 80 >= now // 1_000_000


def test_canonical_header_casing() -> None:
    assert canonical_header("content-type") == "Content-Type"
    assert canonical_header("X-CORTEX-thing") == "X-Cortex-Thing"


def test_headers_record_groups_values_and_drops_transport_headers() -> None:
    raw = [
        (b"Host", b"h"),
        (b"content-length", b"3"),
        (b"Connection", b"keep-alive"),
        (b"x-a", b"1"),
        (b"X-A", b"2"),
        (b"Content-Type", b"text/plain"),
    ]
    assert headers_record(raw) == {"X-A": ["1", "2"], "Content-Type": ["text/plain"]}
