from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from cortex.backends.base import NodeCapacity, ReplicaStatus
from cortex.backends.fake import FakeBackend
from cortex.errors import (
    ConflictError,
    NotDeployedError,
    SpecError,
    UnsupportedOperationError,
)
from cortex.operator.deploy import Deployer
from cortex.operator.reconciler import Reconciler
from cortex.operator.store import StateStore

T0 = 1_700_000_000 * 10**9


def realtime(
    name: str = "iris",
    *,
    image: str = "python:3.11",
    endpoint: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 5,
    init_replicas: int | None = None,
    cpu: str = "200m",
) -> str:
    lines = [
        f"- name: {name}",
        "  kind: RealtimeAPI",
        "  pod:",
        "    containers:",
        "    - name: api",
        f"      image: {image}",
        "      command: [python, -m, http.server]",
        f"      compute: {{cpu: {cpu}}}",
        f"  autoscaling: {{min_replicas: {min_replicas}, max_replicas: {max_replicas}"
        + (f", init_replicas: {init_replicas}" if init_replicas is not None else "")
        + "}",
    ]
    if endpoint:
        lines += ["  networking:", f"    endpoint: {endpoint}"]
    return "\n".join(lines) + "\n"


def batch(name: str = "job", *, image: str = "python:3.11", endpoint: str | None = None) -> str:
    text = (
        f"- name: {name}\n  kind: BatchAPI\n  pod:\n    containers:\n    - name: api\n"
        f"      image: {image}\n      command: [python, run.py]\n"
    )
    if endpoint:
        text += f"  networking:\n    endpoint: {endpoint}\n"
    return text


def splitter(name: str = "split", *targets: tuple[str, int]) -> str:
    entries = "".join(f"  - {{name: {t}, weight: {w}}}\n" for t, w in targets)
    return f"- name: {name}\n  kind: TrafficSplitter\n  apis:\n{entries}"


class CountingReconciler(Reconciler):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1
        super().notify()


@pytest.fixture
def env(tmp_path: Path):
    store = StateStore(tmp_path / "state.db")
    backend = FakeBackend()
    reconciler = CountingReconciler(store, backend, period_s=0.01, drain_timeout_s=0.0)
    clock = (T0 + i * 10**9 for i in itertools.count())
    deployer = Deployer(
        store=store, replicas=reconciler, node=backend, clock_ns=lambda: next(clock)
    )
    yield store, backend, reconciler, deployer
    store.close()


def deploy(deployer: Deployer, text: str, *, force: bool = False):
    return deployer.deploy(text, file_name="cortex.yaml", project_dir="/proj", force=force)


def settle(backend: FakeBackend, reconciler: Reconciler, rounds: int = 6) -> None:
    """Step the reconciler, making every replica Ready and finishing terminations, until still."""
    for _ in range(rounds):
        reconciler.step()
        backend.make_ready()
        backend.finish_terminations()


def test_create_stores_ids_and_init_replicas(env) -> None:
    store, _, reconciler, deployer = env
    [outcome] = deploy(deployer, realtime(min_replicas=1, init_replicas=3))
    assert (outcome.message, outcome.error) == ("creating iris (RealtimeAPI)", "")
    rec = store.get_api("iris")
    assert rec is not None and outcome.record == rec
    assert rec.requested == 3
    assert rec.initial_deployment_time_ns == T0
    assert len(rec.deployment_id) == 10
    assert rec.api_id.endswith(f"-{rec.deployment_id}-{rec.spec_id}")
    assert rec.project_dir == "/proj"
    assert rec.file_name == "cortex.yaml"
    assert reconciler.notified == 1


def test_same_spec_is_already_updating_then_up_to_date(env) -> None:
    store, backend, reconciler, deployer = env
    deploy(deployer, realtime())
    reconciler.step()  # one Creating replica: 0 ready < min_replicas 1, none failed
    [again] = deploy(deployer, realtime())
    assert again.message == "iris (RealtimeAPI) is already updating"
    settle(backend, reconciler)
    [again] = deploy(deployer, realtime())
    assert again.message == "iris (RealtimeAPI) is up to date"
    assert not again.changed
    assert reconciler.notified == 1  # unchanged deploys do not wake the loop
    assert len(store.api_versions("iris")) == 1


def test_update_refused_while_updating_unless_forced(env) -> None:
    store, _, reconciler, deployer = env
    deploy(deployer, realtime())
    reconciler.step()
    first = store.get_api("iris")
    [refused] = deploy(deployer, realtime(image="python:3.12"))
    assert refused.error == "error: iris is updating (override with --force)"
    assert refused.record is None
    assert store.get_api("iris") == first
    [forced] = deploy(deployer, realtime(image="python:3.12"), force=True)
    assert forced.message == "updating iris (RealtimeAPI)"
    rec = store.get_api("iris")
    assert rec is not None and first is not None
    assert rec.deployment_id == first.deployment_id
    assert rec.initial_deployment_time_ns == first.initial_deployment_time_ns
    assert (rec.api_id, rec.pod_id) != (first.api_id, first.pod_id)
    assert [v for v, _ in store.api_versions("iris")] == [rec.api_id, first.api_id]


def test_update_allowed_when_failed_replicas(env) -> None:
    _, backend, reconciler, deployer = env
    deploy(deployer, realtime())
    reconciler.step()
    [replica] = backend.list_replicas("iris")
    backend.set_status(replica.replica_id, ReplicaStatus.FAILED)  # failed: not "updating"
    [outcome] = deploy(deployer, realtime(image="python:3.12"))
    assert outcome.message == "updating iris (RealtimeAPI)"


def test_update_when_ready_keeps_and_clamps_requested(env) -> None:
    store, backend, reconciler, deployer = env
    deploy(deployer, realtime(max_replicas=5))
    settle(backend, reconciler)
    store.set_requested("iris", 4)  # as the autoscaler would
    [outcome] = deploy(deployer, realtime(max_replicas=2))  # autoscaling-only change
    assert outcome.message == "updating iris (RealtimeAPI)"
    rec = store.get_api("iris")
    assert rec is not None and rec.requested == 2  # 4 clamped to the new max_replicas


def test_kind_change_is_refused_per_api(env) -> None:
    store, _, _, deployer = env
    deploy(deployer, batch("iris"))
    outcomes = deploy(deployer, realtime("iris") + batch("other"))
    by_name = {o.name: o for o in outcomes}
    assert by_name["iris"].error == (
        "error: cannot change the kind of iris to RealtimeAPI because it has already been "
        "deployed with kind BatchAPI; please delete it with `cortex delete iris` and redeploy "
        "after updating the api configuration appropriately"
    )
    assert by_name["other"].message == "created other (BatchAPI)"
    rec = store.get_api("iris")
    assert rec is not None and rec.kind == "BatchAPI"


def test_batch_created_updated_up_to_date(env) -> None:
    store, _, _, deployer = env
    [created] = deploy(deployer, batch())
    assert created.message == "created job (BatchAPI)"
    rec = store.get_api("job")
    assert rec is not None
    assert rec.deployment_id == "" and "--" in rec.api_id and rec.requested == 0
    [same] = deploy(deployer, batch())
    assert same.message == "job (BatchAPI) is up to date"
    [updated] = deploy(deployer, batch(image="python:3.12"))
    assert updated.message == "updated job (BatchAPI)"
    new = store.get_api("job")
    assert new is not None and new.initial_deployment_time_ns == rec.initial_deployment_time_ns


def test_splitters_are_processed_after_their_targets(env) -> None:
    _, _, _, deployer = env
    outcomes = deploy(deployer, splitter("split", ("iris", 100)) + realtime("iris"))
    assert [o.message for o in outcomes] == [
        "creating iris (RealtimeAPI)",
        "created split (TrafficSplitter)",
    ]
    [same] = deploy(deployer, splitter("split", ("iris", 100)))
    assert same.message == "split (TrafficSplitter) is up to date"


def test_splitter_targets_must_be_realtime_apis(env) -> None:
    store, _, _, deployer = env
    deploy(deployer, batch("job"))
    with pytest.raises(SpecError) as one:
        deploy(deployer, splitter("split", ("job", 100)))
    assert one.value.message.startswith(
        "cortex.yaml: split (TrafficSplitter): api job was either not found or is not a RealtimeAPI"
    )
    with pytest.raises(SpecError) as two:
        deploy(deployer, splitter("split", ("a", 50), ("b", 50)))
    assert "apis a and b were either not found or are not RealtimeAPIs" in two.value.message
    assert store.get_api("split") is None


def test_endpoint_collision_with_a_deployed_api_rejects_the_whole_file(env) -> None:
    store, _, reconciler, deployer = env
    deploy(deployer, realtime("iris", endpoint="/models/iris"))
    with pytest.raises(SpecError) as exc:
        deploy(deployer, batch("fresh") + realtime("other", endpoint="/models/iris/"))
    assert (
        "cortex.yaml: other (RealtimeAPI): networking: endpoint: /models/iris: "
        "endpoint is already being used by iris"
    ) in exc.value.message
    assert store.get_api("fresh") is None and store.get_api("other") is None
    assert reconciler.notified == 1
    # redeploying iris itself, or moving it while another API takes its old path, is fine
    deploy(
        deployer, realtime("iris", endpoint="/v2/iris") + realtime("other", endpoint="/models/iris")
    )
    assert store.get_api("other") is not None


def test_invalid_file_stores_nothing(env) -> None:
    store, _, reconciler, deployer = env
    with pytest.raises(SpecError):
        deploy(deployer, realtime("good") + "- name: bad\n  kind: RealtimeAPI\n  pod: {}\n")
    assert store.list_apis() == []
    assert reconciler.notified == 0


def test_pod_must_fit_on_the_node(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    backend = FakeBackend(node=NodeCapacity(cpu_millis=2000, mem_bytes=2**30, gpus=0))
    deployer = Deployer(store=store, replicas=Reconciler(store, backend), node=backend)
    try:
        with pytest.raises(SpecError) as exc:
            deploy(deployer, realtime(cpu="3"))
        assert "the local node is not large enough" in exc.value.message
        assert "cpu 3, mem 0, gpu 0" in exc.value.message
        assert deploy(deployer, realtime(cpu="2"))[0].message == "creating iris (RealtimeAPI)"
    finally:
        store.close()


def test_refresh_draws_a_new_deployment_id(env) -> None:
    store, backend, reconciler, deployer = env
    deploy(deployer, realtime())
    reconciler.step()
    with pytest.raises(ConflictError, match=r"^iris is updating \(override with --force\)$"):
        deployer.refresh("iris")
    settle(backend, reconciler)
    before = store.get_api("iris")
    outcome = deployer.refresh("iris")
    assert outcome.message == "updating iris (RealtimeAPI)"
    after = store.get_api("iris")
    assert before is not None and after is not None
    assert after.deployment_id != before.deployment_id
    assert (after.spec_id, after.pod_id) == (before.spec_id, before.pod_id)
    assert after.api_id != before.api_id
    assert len(store.api_versions("iris")) == 2


def test_refresh_errors(env) -> None:
    _, _, _, deployer = env
    with pytest.raises(NotDeployedError, match=r"^nope is not deployed$"):
        deployer.refresh("nope")
    deploy(deployer, batch())
    with pytest.raises(UnsupportedOperationError, match="of kind BatchAPI"):
        deployer.refresh("job")


def test_delete_and_splitter_guard(env) -> None:
    store, _, reconciler, deployer = env
    deploy(deployer, realtime("a") + realtime("b") + splitter("s1", ("a", 50), ("b", 50)))
    deploy(deployer, splitter("s2", ("a", 100)))
    with pytest.raises(ConflictError) as exc:
        deployer.delete("a")
    assert exc.value.message == (
        "cannot delete api because it is used by the following TrafficSplitters: s1, s2"
    )
    with pytest.raises(ConflictError, match=r"following TrafficSplitter: s1$"):
        deployer.delete("b")
    assert deployer.delete("s1") == "deleting s1"
    assert deployer.delete("b", keep_cache=True) == "deleting b"
    assert store.get_api("b") is None
    assert len(store.api_versions("b")) == 1
    with pytest.raises(NotDeployedError, match=r"^b is not deployed$"):
        deployer.delete("b")
    assert reconciler.notified == 4


def test_fit_counts_the_dequeuer_sidecar_of_async_and_batch_apis(tmp_path: Path) -> None:
    """SPEC 11.4 step 4: an AsyncAPI replica or BatchAPI worker also runs the dequeuer, which
    requests 100m / 100Mi; a pod that fits only without it does not fit."""
    store = StateStore(tmp_path / "state.db")
    backend = FakeBackend(node=NodeCapacity(cpu_millis=2000, mem_bytes=2**30, gpus=0))
    deployer = Deployer(store=store, replicas=Reconciler(store, backend), node=backend)
    compute = "      compute: {cpu: 1950m}\n"
    try:
        for kind in ("BatchAPI", "AsyncAPI"):
            text = batch(f"{kind.lower()}-x").replace("BatchAPI", kind) + compute
            with pytest.raises(SpecError) as exc:
                deploy(deployer, text)
            assert "requested: cpu 2050m, mem 100Mi, gpu 0" in exc.value.message
        assert deploy(deployer, realtime(cpu="1950m"))[0].message == "creating iris (RealtimeAPI)"
    finally:
        store.close()
