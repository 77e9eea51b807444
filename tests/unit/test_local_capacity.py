"""The local node's capacity ledger and per-pod requests."""

from __future__ import annotations

from cortex.backends.base import NodeCapacity
from cortex.backends.local.capacity import Ledger, split_gpus
from cortex.backends.requests import Request, pod_request
from cortex.spec.models import Compute, ContainerSpec, PodSpec
from cortex.spec.quantity import Quantity


def test_pod_request_sums_containers_with_the_cpu_default():
    pod = PodSpec(
        containers=[
            ContainerSpec(name="a", image="i", compute=Compute(mem=Quantity.parse("1Ki"), gpu=1)),
            ContainerSpec(name="b", image="i", compute=Compute(cpu=Quantity.parse("1.5"))),
            ContainerSpec(name="c", image="i", compute=Compute(cpu=None)),
        ]
    )
    # 200m (default) + 1500m + 0 (explicit null); 1024 bytes; one GPU
    assert pod_request(pod) == Request(1700, 1024, 1)


def test_ledger_fits_takes_and_releases_gpus_by_index():
    ledger = Ledger(NodeCapacity(cpu_millis=1000, mem_bytes=100, gpus=3))
    assert ledger.take("a", Request(400, 50, 2)) == (0, 1)
    assert ledger.take("a", Request(400, 50, 2)) == (0, 1)  # idempotent
    assert ledger.take("b", Request(700, 10, 0)) is None  # 400 + 700 > 1000 millis
    assert ledger.take("c", Request(100, 60, 0)) is None  # 50 + 60 > 100 bytes
    assert ledger.take("d", Request(100, 10, 2)) is None  # only one GPU left
    assert ledger.take("e", Request(100, 10, 1)) == (2,)
    snap = ledger.snapshot()
    assert (snap.requested_cpu_millis, snap.requested_mem_bytes, snap.requested_gpus) == (
        500,
        60,
        3,
    )
    ledger.release("a")
    assert ledger.take("d", Request(100, 10, 2)) == (0, 1)
    assert ledger.free() == Request(800, 80, 0)


def test_split_gpus_in_container_order():
    assert split_gpus((3, 5, 7), [1, 0, 2]) == [(3,), (), (5, 7)]
