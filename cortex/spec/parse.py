"""Parse and validate a ``cortex.yaml`` (SPEC 11.1): a YAML list of maps, one per API.

Per item, two passes as in the original: (1) ``name`` and ``kind`` only, so that later errors
can name the API; (2) the full schema of that kind, where unknown keys are errors. The first
error found (in file order, then field order) is raised as ``SpecError``:

    <file>: <api name> (<Kind>): <field>: index <i>: <field>: <message>

(``<file>: resource at index <i>: ...`` while the name is unknown), followed by
:data:`SCHEMA_SUFFIX`. A file is all-or-nothing: one invalid API rejects it. In-file checks
across APIs (unique names, unique endpoints) run after every item is valid; checks that need
the cluster (deployed splitter targets, endpoint collisions with deployed APIs, capacity) are
the operator's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml

from cortex.errors import SpecError
from cortex.spec import fields as f
from cortex.spec.fields import FieldError
from cortex.spec.kinds import POD_KINDS, SCALED_KINDS, Kind
from cortex.spec.models import ApiSpec, Autoscaling, UpdateStrategy
from cortex.spec.pod import DNS_1035, DNS_1035_MESSAGE, parse_pod
from cortex.spec.sections import (
    parse_autoscaling,
    parse_networking,
    parse_node_groups,
    parse_splitter_apis,
    parse_update_strategy,
)

SCHEMA_SUFFIX = f"\n\napi configuration schema: {f.DOCS_HINT}"
MAX_NAME_LENGTH = 42
_KIND_VALUES = tuple(k.value for k in Kind)
_ALL_TOP_KEYS = (
    "name",
    "kind",
    "pod",
    "networking",
    "autoscaling",
    "update_strategy",
    "node_groups",
    "apis",
)
_TOP_KEYS = {
    Kind.REALTIME_API: _ALL_TOP_KEYS[:7],
    Kind.ASYNC_API: _ALL_TOP_KEYS[:7],
    Kind.BATCH_API: ("name", "kind", "pod", "networking", "node_groups"),
    Kind.TASK_API: ("name", "kind", "pod", "networking", "node_groups"),
    Kind.TRAFFIC_SPLITTER: ("name", "kind", "networking", "apis"),
}


def identify(file_name: str, item: Any, index: int) -> str:
    """``<file>: <name> (<Kind>)``, or ``<file>: resource at index <i>`` without a usable name."""
    raw = item if isinstance(item, dict) else {}
    name, kind = raw.get("name"), raw.get("kind")
    label = name if isinstance(name, str) and name else f"resource at {f.index(index)}"
    if isinstance(kind, str) and kind in _KIND_VALUES:
        label += f" ({kind})"
    return f"{file_name}: {label}" if file_name else label


def parse_api(item: dict[str, Any], *, file_name: str, index: int) -> ApiSpec:
    """Validate one item (a raw map as written or as stored) into an ``ApiSpec``."""
    try:
        return _parse(item, file_name=file_name, index=index)
    except FieldError as exc:
        raise SpecError(
            f"{identify(file_name, item, index)}: {exc.render()}{SCHEMA_SUFFIX}",
            details={"file_name": file_name, "index": index, "path": list(exc.path)},
        ) from None


def load_apis(data: str | bytes, *, file_name: str) -> list[ApiSpec]:
    """Parse a whole ``cortex.yaml``; every API valid, or ``SpecError`` for the first problem."""
    items = _load_items(data, file_name)
    apis = [parse_api(item, file_name=file_name, index=i) for i, item in enumerate(items)]
    _check_unique(apis, file_name)
    return apis


def _load_items(data: str | bytes, file_name: str) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise SpecError(f"{file_name}: invalid yaml: {exc}") from None
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        raise SpecError(
            f"{file_name}: cortex YAML configuration files must contain a list of maps "
            f"({f.DOCS_HINT} for api configuration schema)"
        )
    if not doc:
        raise SpecError(
            f"{file_name}: at least one API must be configured "
            f"({f.DOCS_HINT} for api configuration schema)"
        )
    return doc


def _parse_name(raw: dict[str, Any]) -> str:
    name = f.req_str(raw, "name", ())
    if not DNS_1035.match(name):
        raise FieldError(("name",), f"{f.user_str(name)} {DNS_1035_MESSAGE}")
    if len(name) > MAX_NAME_LENGTH:
        raise FieldError(
            ("name",), f"{f.user_str(name)} must be no more than {MAX_NAME_LENGTH} characters"
        )
    if name.startswith("b-"):
        raise FieldError(("name",), f'{f.user_str(name)} cannot start with "b-"')
    return name


def _parse_kind(raw: dict[str, Any]) -> Kind:
    kind = f.req_str(raw, "kind", ())
    if kind not in _KIND_VALUES:
        raise FieldError(
            ("kind",), f"invalid value (got {f.user_str(kind)}, must be {f.str_or(_KIND_VALUES)})"
        )
    return Kind(kind)


def _parse(item: Any, *, file_name: str, index: int) -> ApiSpec:
    raw = f.as_map(item, ())
    name = _parse_name(raw)
    kind = _parse_kind(raw)
    f.check_keys(raw, _TOP_KEYS[kind], (), elsewhere=_ALL_TOP_KEYS, kind=kind)
    pod = parse_pod(f.opt_struct(raw, "pod", ()), kind, ("pod",)) if kind in POD_KINDS else None
    networking = parse_networking(f.opt_struct(raw, "networking", ()), ("networking",))
    autoscaling: Autoscaling | None = None
    strategy: UpdateStrategy | None = None
    if kind in SCALED_KINDS:
        assert pod is not None  # every scaled kind has a pod
        autoscaling = parse_autoscaling(
            f.opt_struct(raw, "autoscaling", ()), kind, pod, ("autoscaling",)
        )
        strategy = parse_update_strategy(
            f.opt_struct(raw, "update_strategy", ()), ("update_strategy",)
        )
    return ApiSpec(
        name=name,
        kind=kind,
        pod=pod,
        networking=networking,
        autoscaling=autoscaling,
        update_strategy=strategy,
        node_groups=parse_node_groups(raw, ()) if kind in POD_KINDS else None,
        apis=parse_splitter_apis(raw, ()) if kind == Kind.TRAFFIC_SPLITTER else None,
        index=index,
        file_name=file_name,
        submitted_api_spec=copy.deepcopy(raw),
    )


def _check_unique(apis: Sequence[ApiSpec], file_name: str) -> None:
    """SPEC 11.4 step 5, within one file: names and (resolved) endpoints are unique."""
    by_name: dict[str, ApiSpec] = {}
    by_endpoint: dict[str, ApiSpec] = {}
    for api in apis:
        first = by_name.setdefault(api.name, api)
        if first is not api:
            raise SpecError(
                f'{file_name}: name "{api.name}" must be unique across apis (defined in '
                f"{file_name} at {f.index(first.index)} and {f.index(api.index)}){SCHEMA_SUFFIX}"
            )
        endpoint = api.networking.endpoint or f"/{api.name}"
        other = by_endpoint.setdefault(endpoint, api)
        if other is not api:
            raise SpecError(
                f'{file_name}: endpoint "{endpoint}" must be unique across apis (defined in '
                f"{other.name} and {api.name}){SCHEMA_SUFFIX}"
            )
