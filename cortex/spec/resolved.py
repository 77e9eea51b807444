"""Values derived from a user's spec, never written back into it (SPEC 0.5, 0.6, 10.4, 11.3).

- Defaults that depend on other fields: ``endpoint`` (``/<name>``), ``init_replicas``
  (``min_replicas``), ``target_in_flight`` (``pod.max_concurrency``).
- Ids: ``pod_id`` = sha256 hex (first 63 chars) of canonical JSON of ``{name, kind}`` followed
  by canonical JSON of ``pod``; ``spec_id`` = first 32 hex chars of sha256 over ``pod_id`` and
  the canonical JSON of ``apis``, ``networking``, ``autoscaling``, ``update_strategy`` and
  ``node_groups``. Canonical JSON is :func:`spec_to_json`'s encoding (sorted keys, no spaces),
  with the derived defaults filled in, so writing a default out explicitly changes no id.
- Time-ordered ids: ``monotonic_id`` = hex(INT64_MAX - now_ns), so newer ids sort first.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from datetime import timedelta
from typing import Any

from cortex.spec.duration import to_nanos
from cortex.spec.models import ApiSpec, Autoscaling, UpdateStrategy

INT64_MAX = 2**63 - 1
DEPLOYMENT_ID_LENGTH = 10
_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits


def endpoint(api: ApiSpec) -> str:
    """The path the API is served at: the user's canonical endpoint, else ``/<name>``."""
    return api.networking.endpoint or f"/{api.name}"


def _autoscaling(api: ApiSpec) -> Autoscaling:
    if api.autoscaling is None:
        raise ValueError(f"{api.name} ({api.kind}) has no autoscaling")
    return api.autoscaling


def init_replicas(api: ApiSpec) -> int:
    """Replicas at first deploy: ``autoscaling.init_replicas``, else ``min_replicas``.

    ValueError for kinds without autoscaling (Batch, Task, TrafficSplitter).
    """
    scaling = _autoscaling(api)
    return scaling.min_replicas if scaling.init_replicas is None else scaling.init_replicas


def target_in_flight(api: ApiSpec) -> float:
    """The autoscaler's per-replica target: ``autoscaling.target_in_flight``, else
    ``pod.max_concurrency``. ValueError for kinds without autoscaling.
    """
    scaling = _autoscaling(api)
    if scaling.target_in_flight is not None:
        return scaling.target_in_flight
    assert api.pod is not None  # autoscaled kinds always have a pod
    return float(api.pod.max_concurrency)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pod_id(api: ApiSpec) -> str:
    """Hash of what a replica runs: changes exactly when replicas must be replaced."""
    return str(spec_to_json(api)["pod_id"])


def spec_id(api: ApiSpec) -> str:
    """Hash of the whole deployable spec: changes whenever a deploy must update something."""
    return str(spec_to_json(api)["spec_id"])


def _ids(doc: dict[str, Any]) -> tuple[str, str]:
    """(pod_id, spec_id) of a spec JSON document (module docstring: what each covers)."""
    head = _canonical({"name": doc["name"], "kind": doc["kind"]})
    pod = _sha256(head + _canonical(doc["pod"]))[:63]
    parts = [pod] + [
        _canonical(doc[key])
        for key in ("apis", "networking", "autoscaling", "update_strategy", "node_groups")
    ]
    return pod, _sha256("".join(parts))[:32]


def monotonic_id(now_ns: int) -> str:
    """``hex(INT64_MAX - now_ns)``: lexicographically (and numerically) newest first."""
    return format(INT64_MAX - now_ns, "x")


def new_deployment_id() -> str:
    """10 random chars: a lowercase letter, then lowercase letters or digits (k8s-name style)."""
    rest = "".join(secrets.choice(_REST) for _ in range(DEPLOYMENT_ID_LENGTH - 1))
    return secrets.choice(_FIRST) + rest


def api_id(spec_id: str, deployment_id: str, now_ns: int) -> str:
    """``<monotonic_id>-<deployment_id>-<spec_id>`` (``--`` when the deployment id is empty)."""
    return f"{monotonic_id(now_ns)}-{deployment_id}-{spec_id}"


def time_from_id(id: str) -> float:
    """Unix seconds encoded in an api or job id (the hex before the first ``-``)."""
    return (INT64_MAX - int(id.split("-", 1)[0], 16)) / 1e9


def _count(value: str, desired: int, *, round_up: bool) -> int:
    if not value.endswith("%"):
        return int(value)
    exact = desired * int(value[:-1])
    return -(-exact // 100) if round_up else exact // 100


def surge_and_unavailable(strategy: UpdateStrategy, desired: int) -> tuple[int, int]:
    """Kubernetes' rolling-update fence posts: percentages of ``desired``, surge rounded up,
    unavailable rounded down; if both come out 0, unavailable is 1 so a rollout can progress.
    """
    surge = _count(strategy.max_surge, desired, round_up=True)
    unavailable = _count(strategy.max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _autoscaling_json(api: ApiSpec) -> dict[str, Any] | None:
    if api.autoscaling is None:
        return None
    doc = api.autoscaling.model_dump()
    for key, value in doc.items():
        if isinstance(value, timedelta):
            doc[key] = to_nanos(value)
    doc["init_replicas"] = init_replicas(api)
    doc["target_in_flight"] = target_in_flight(api)
    return doc


def spec_to_json(api: ApiSpec) -> dict[str, Any]:
    """SPEC 10.4's ``spec.API`` JSON, minus what only a deploy knows.

    The user's fields with every default filled in (the endpoint, ``init_replicas`` and
    ``target_in_flight`` resolved), durations as integer nanoseconds, quantities as canonical
    k8s strings, the kind as its string, plus ``pod_id`` and ``spec_id``. The operator adds
    ``id``, ``deployment_id``, ``key``, ``initial_deployment_time``, ``last_updated`` and
    ``metadata_root``.
    """
    doc = api.model_dump(mode="json", exclude={"autoscaling"})
    doc["kind"] = str(api.kind)
    doc["networking"] = {"endpoint": endpoint(api)}
    doc["autoscaling"] = _autoscaling_json(api)
    doc = {key: doc[key] for key in ApiSpec.model_fields}  # keep the model's field order
    doc["pod_id"], doc["spec_id"] = _ids(doc)
    return doc
