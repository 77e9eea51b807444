"""Validation of ``pod`` (SPEC 11.2): port, concurrency, containers, compute, probes, pre_stop.

Which keys a kind may use is a table (``_POD_KEYS``, ``_CONTAINER_KEYS``, ``_READINESS``);
a key valid only for other kinds is refused as unsupported for this kind.
"""

from __future__ import annotations

import re
from typing import Any

from cortex.spec import fields as f
from cortex.spec.fields import FieldError, Path
from cortex.spec.kinds import Kind
from cortex.spec.models import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_QUEUE_LENGTH,
    DEFAULT_PORT,
    Compute,
    ContainerSpec,
    ExecAction,
    HTTPGetAction,
    PodSpec,
    PreStop,
    Probe,
    TCPSocketAction,
)
from cortex.spec.paths import canonical_path
from cortex.spec.quantity import Quantity

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_MESSAGE = (
    "must contain only lower case letters, numbers, and dashes, start with a letter, "
    "and cannot end with a dash"
)
RESERVED_CONTAINER_NAMES = ("dequeuer", "proxy")
RESERVED_ENV_PREFIXES = ("CORTEX_", "KUBEXIT_")
MAX_CONTAINER_NAME_LENGTH = 63
MAX_CONCURRENCY = {Kind.REALTIME_API: 30000, Kind.ASYNC_API: 100}
MAX_QUEUE_LENGTH = 30000
MIN_CPU = Quantity.parse("20m")
MIN_MEM = Quantity.parse("20Mi")
QUANTITY_MESSAGE = (
    f"invalid kubernetes quantity, some valid examples are 1, 200m, 500Mi, 2G ({f.DOCS_HINT})"
)

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DOCKER_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

_POD_KEYS = {
    Kind.REALTIME_API: ("port", "max_concurrency", "max_queue_length", "containers"),
    Kind.ASYNC_API: ("port", "max_concurrency", "containers"),
    Kind.BATCH_API: ("port", "containers"),
    Kind.TASK_API: ("port", "containers"),
}
_ALL_POD_KEYS = _POD_KEYS[Kind.REALTIME_API]
_BASE_CONTAINER_KEYS = ("name", "image", "env", "command", "args", "compute", "liveness_probe")
_CONTAINER_KEYS = {
    Kind.REALTIME_API: (*_BASE_CONTAINER_KEYS, "readiness_probe", "pre_stop"),
    Kind.ASYNC_API: (*_BASE_CONTAINER_KEYS, "readiness_probe", "pre_stop"),
    Kind.BATCH_API: (*_BASE_CONTAINER_KEYS, "readiness_probe"),
    Kind.TASK_API: _BASE_CONTAINER_KEYS,
}
_ALL_CONTAINER_KEYS = _CONTAINER_KEYS[Kind.REALTIME_API]
_ALL_HANDLERS = ("http_get", "tcp_socket", "exec")
# Async and Batch readiness is checked by the dequeuer, which knows only HTTP and TCP probes.
_READINESS = {
    Kind.REALTIME_API: _ALL_HANDLERS,
    Kind.ASYNC_API: ("http_get", "tcp_socket"),
    Kind.BATCH_API: ("http_get", "tcp_socket"),
}
_PROBE_INTS = {
    "initial_delay_seconds": 0,
    "timeout_seconds": 1,
    "period_seconds": 10,
    "success_threshold": 1,
    "failure_threshold": 3,
}
_COMPUTE_KEYS = ("cpu", "mem", "gpu", "inf", "shm")


def parse_pod(raw: dict[str, Any], kind: Kind, path: Path) -> PodSpec:
    """The ``pod`` struct of a Realtime / Async / Batch / Task API (``raw`` may be ``{}``)."""
    f.check_keys(raw, _POD_KEYS[kind], path, elsewhere=_ALL_POD_KEYS, kind=kind)
    port = _parse_pod_port(raw, kind, path)
    max_concurrency = f.opt_int(raw, "max_concurrency", path, DEFAULT_MAX_CONCURRENCY)
    if kind in MAX_CONCURRENCY:
        f.check_range(max_concurrency, (*path, "max_concurrency"), gt=0, le=MAX_CONCURRENCY[kind])
    max_queue_length = f.opt_int(raw, "max_queue_length", path, DEFAULT_MAX_QUEUE_LENGTH)
    f.check_range(max_queue_length, (*path, "max_queue_length"), gt=0, le=MAX_QUEUE_LENGTH)
    items = f.req_list(raw, "containers", path, min_length=1)
    containers = [
        parse_container(item, kind, (*path, "containers", f.index(i)))
        for i, item in enumerate(items)
    ]
    _check_pod_containers(containers, path)
    return PodSpec(
        port=port,
        max_concurrency=max_concurrency,
        max_queue_length=max_queue_length,
        containers=containers,
    )


def _parse_pod_port(raw: dict[str, Any], kind: Kind, path: Path) -> int | None:
    if kind == Kind.TASK_API:
        if raw.get("port") is not None:
            raise FieldError(path, "port is not supported for TaskAPI kind")
        return None
    port = f.opt_int(raw, "port", path, DEFAULT_PORT, nullable=True)
    f.check_port(port, (*path, "port"))
    return port


def _check_pod_containers(containers: list[ContainerSpec], path: Path) -> None:
    seen: set[str] = set()
    for container in containers:
        if container.name in seen:
            raise FieldError(
                (*path, "containers"), f"container name {container.name} must be unique"
            )
        seen.add(container.name)
    if any(c.compute.gpu for c in containers) and any(c.compute.inf for c in containers):
        raise FieldError(path, "gpu and inf resources cannot be used together")


def parse_container(item: Any, kind: Kind, path: Path) -> ContainerSpec:
    """One entry of ``pod.containers``."""
    raw = f.as_map(item, path)
    f.check_keys(raw, _CONTAINER_KEYS[kind], path, elsewhere=_ALL_CONTAINER_KEYS, kind=kind)
    name = _container_name(raw, path)
    image = f.req_str(raw, "image", path)
    if not DOCKER_IMAGE.match(image):
        raise FieldError((*path, "image"), f"{f.user_str(image)} is not a valid docker image path")
    env = f.opt_str_map(raw, "env", path)
    for key in env:
        if key.startswith(RESERVED_ENV_PREFIXES):
            raise FieldError(
                (*path, "env"),
                "environment variables starting with CORTEX_ or KUBEXIT_ are reserved",
            )
    command = f.opt_str_list(raw, "command", path)
    if command is None and kind in (Kind.BATCH_API, Kind.TASK_API):
        raise FieldError(path, f"command must be specified for {kind} kind")
    return ContainerSpec(
        name=name,
        image=image,
        env=env,
        command=command,
        args=f.opt_str_list(raw, "args", path),
        compute=parse_compute(f.opt_struct(raw, "compute", path), (*path, "compute")),
        readiness_probe=_opt_probe(raw, "readiness_probe", path, _READINESS.get(kind, ()), kind),
        liveness_probe=_opt_probe(raw, "liveness_probe", path, _ALL_HANDLERS, kind),
        pre_stop=_opt_pre_stop(raw, path),
    )


def _container_name(raw: dict[str, Any], path: Path) -> str:
    name = f.req_str(raw, "name", path)
    where = (*path, "name")
    if not DNS_1035.match(name):
        raise FieldError(where, f"{f.user_str(name)} {DNS_1035_MESSAGE}")
    if len(name) > MAX_CONTAINER_NAME_LENGTH:
        raise FieldError(
            where, f"{f.user_str(name)} must be no more than {MAX_CONTAINER_NAME_LENGTH} characters"
        )
    if name in RESERVED_CONTAINER_NAMES:
        raise FieldError(where, f"{f.user_str(name)} is not allowed, please use a different value")
    return name


def parse_compute(raw: dict[str, Any], path: Path) -> Compute:
    """``compute``: cpu (default 200m, >= 20m), mem (>= 20Mi), gpu, inf (>= 0), shm (<= mem)."""
    f.check_keys(raw, _COMPUTE_KEYS, path)
    cpu = _quantity(raw, "cpu", path, default=Compute().cpu, numbers=True, minimum=MIN_CPU)
    mem = _quantity(raw, "mem", path, default=None, numbers=False, minimum=MIN_MEM)
    shm = _quantity(raw, "shm", path, default=None, numbers=False, minimum=None)
    gpu = f.opt_int(raw, "gpu", path, 0)
    f.check_range(gpu, (*path, "gpu"), ge=0)
    inf = f.opt_int(raw, "inf", path, 0)
    f.check_range(inf, (*path, "inf"), ge=0)
    if shm is not None and mem is not None and shm > mem:
        raise FieldError(path, f"shm ({shm}) cannot exceed total compute mem ({mem})")
    return Compute(cpu=cpu, mem=mem, gpu=gpu, inf=inf, shm=shm)


def _quantity(
    raw: dict[str, Any],
    key: str,
    path: Path,
    *,
    default: Quantity | None,
    numbers: bool,
    minimum: Quantity | None,
) -> Quantity | None:
    """A k8s quantity; explicit null means "no request"; YAML numbers only where ``numbers``."""
    if key not in raw:
        return default
    value = raw[key]
    if value is None:
        return None
    where = (*path, key)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (isinstance(value, str) or (numbers and is_number)):
        raise f.invalid_type(where, value, "string or number" if numbers else "string")
    try:
        quantity = Quantity.parse(value)
    except ValueError:
        raise FieldError(where, f"{f.user_str(value)}: {QUANTITY_MESSAGE}") from None
    if minimum is not None and quantity < minimum:
        raise FieldError(
            where,
            f'must be greater than or equal to {minimum} (got "{value}")',
        )
    return quantity


def _handler_message(options: tuple[str, ...], given: int) -> str:
    if len(options) == 2:
        message = f"please specify either {f.str_or(options)}"
        return message if given == 0 else message + " (both cannot be specified at the same time)"
    if given == 0:
        return f"please specify one of the following fields: {f.str_or(options)}"
    return f"please specify only one of the following fields: {f.str_or(options)}"


Handlers = tuple[HTTPGetAction | None, TCPSocketAction | None, ExecAction | None]


def _handlers(raw: dict[str, Any], options: tuple[str, ...], path: Path) -> Handlers:
    """The (http_get, tcp_socket, exec) handlers; exactly one of ``options`` must be given."""
    given = [key for key in options if raw.get(key) is not None]
    if len(given) != 1:
        raise FieldError(path, _handler_message(options, len(given)))
    key = given[0]
    where = (*path, key)
    sub = f.as_map(raw[key], where)
    if key == "http_get":
        return _http_get(sub, where), None, None
    if key == "tcp_socket":
        return None, _tcp_socket(sub, where), None
    return None, None, _exec(sub, where)


def _http_get(raw: dict[str, Any], path: Path) -> HTTPGetAction:
    f.check_keys(raw, ("path", "port"), path)
    url_path = f.opt_str(raw, "path", path, "/", nullable=False) or "/"
    url_path = canonical_path(url_path, (*path, "path"))
    port = f.req_int(raw, "port", path)
    f.check_port(port, (*path, "port"))
    return HTTPGetAction(path=url_path, port=port)


def _tcp_socket(raw: dict[str, Any], path: Path) -> TCPSocketAction:
    f.check_keys(raw, ("port",), path)
    port = f.req_int(raw, "port", path)
    f.check_port(port, (*path, "port"))
    return TCPSocketAction(port=port)


def _exec(raw: dict[str, Any], path: Path) -> ExecAction:
    f.check_keys(raw, ("command",), path)
    command = f.opt_str_list(raw, "command", path, required=True)
    return ExecAction(command=command or [])


def _opt_probe(
    raw: dict[str, Any], key: str, path: Path, options: tuple[str, ...], kind: Kind
) -> Probe | None:
    sub = f.nullable_struct(raw, key, path)
    if sub is None:
        return None
    where = (*path, key)
    f.check_keys(sub, (*options, *_PROBE_INTS), where, elsewhere=_ALL_HANDLERS, kind=kind)
    ints: dict[str, int] = {}
    for name, default in _PROBE_INTS.items():
        ints[name] = f.opt_int(sub, name, where, default)
        f.check_range(ints[name], (*where, name), ge=0)
    http_get, tcp_socket, exec_ = _handlers(sub, options, where)
    return Probe(http_get=http_get, tcp_socket=tcp_socket, exec=exec_, **ints)


def _opt_pre_stop(raw: dict[str, Any], path: Path) -> PreStop | None:
    sub = f.nullable_struct(raw, "pre_stop", path)
    if sub is None:
        return None
    where = (*path, "pre_stop")
    options = ("http_get", "exec")
    f.check_keys(sub, options, where)
    http_get, _, exec_ = _handlers(sub, options, where)
    return PreStop(http_get=http_get, exec=exec_)
