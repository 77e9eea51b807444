"""The user's API spec as typed models (SPEC 11.2-11.3, 9); attribute names are the YAML keys.

These hold exactly what the user wrote, with SPEC's static defaults filled in. Values derived
from other fields (the default endpoint ``/<name>``, ``init_replicas`` = ``min_replicas``,
``target_in_flight`` = ``max_concurrency``) and the hash ids live in :mod:`cortex.spec.resolved`.

Build them through :func:`cortex.spec.parse.load_apis` / ``parse_api``, which validate the raw map
and produce SPEC's error messages; constructing a model directly only type-checks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cortex.spec.kinds import Kind
from cortex.spec.quantity import Quantity

DEFAULT_PORT = 8080
DEFAULT_MAX_CONCURRENCY = 1
DEFAULT_MAX_QUEUE_LENGTH = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HTTPGetAction(_Model):
    path: str = "/"
    port: int


class TCPSocketAction(_Model):
    port: int


class ExecAction(_Model):
    command: list[str]


class Probe(_Model):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3


class PreStop(_Model):
    http_get: HTTPGetAction | None = None
    exec: ExecAction | None = None


class Compute(_Model):
    cpu: Quantity | None = Field(default_factory=lambda: Quantity.parse("200m"))
    mem: Quantity | None = None
    gpu: int = 0
    inf: int = 0
    shm: Quantity | None = None


class ContainerSpec(_Model):
    name: str
    image: str
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    args: list[str] | None = None
    compute: Compute = Field(default_factory=Compute)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    pre_stop: PreStop | None = None


class PodSpec(_Model):
    port: int | None = DEFAULT_PORT  # None only for TaskAPI (no port, no CORTEX_PORT)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_queue_length: int = DEFAULT_MAX_QUEUE_LENGTH
    containers: list[ContainerSpec]


class Networking(_Model):
    endpoint: str | None = None  # canonical "/x/y"; None: the default "/<name>" (resolved)


class Autoscaling(_Model):
    min_replicas: int = 1
    max_replicas: int = 100
    init_replicas: int | None = None  # None: min_replicas (resolved)
    target_in_flight: float | None = None  # None: pod.max_concurrency (resolved)
    window: timedelta = timedelta(seconds=60)
    downscale_stabilization_period: timedelta = timedelta(minutes=5)
    upscale_stabilization_period: timedelta = timedelta(minutes=1)
    max_downscale_factor: float = 0.75
    max_upscale_factor: float = 1.5
    downscale_tolerance: float = 0.05
    upscale_tolerance: float = 0.05


class UpdateStrategy(_Model):
    max_surge: str = "25%"  # "N%" (0..100) or a whole number of replicas
    max_unavailable: str = "25%"


class TrafficSplitTarget(_Model):
    name: str
    weight: int
    shadow: bool = False


class ApiSpec(_Model):
    name: str
    kind: Kind
    pod: PodSpec | None = None  # None for TrafficSplitter
    networking: Networking = Field(default_factory=Networking)
    autoscaling: Autoscaling | None = None  # defaults filled for Realtime/Async, None otherwise
    update_strategy: UpdateStrategy | None = None  # same
    node_groups: list[str] | None = None  # None: every node group
    apis: list[TrafficSplitTarget] | None = None  # TrafficSplitter only
    index: int = 0  # position in the file
    file_name: str = ""
    submitted_api_spec: dict[str, Any] = Field(default_factory=dict)  # the raw map, as written
