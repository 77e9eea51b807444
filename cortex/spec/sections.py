"""Validation of the API-level sections other than ``pod`` (SPEC 11.2-11.3, 9):
``networking``, ``autoscaling``, ``update_strategy``, ``node_groups`` and a splitter's ``apis``.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from cortex.spec import fields as f
from cortex.spec.duration import format_duration, parse_duration
from cortex.spec.fields import FieldError, Path
from cortex.spec.kinds import Kind
from cortex.spec.models import Autoscaling, Networking, PodSpec, TrafficSplitTarget, UpdateStrategy
from cortex.spec.paths import canonical_endpoint

_AUTOSCALING_DEFAULTS = Autoscaling()
_AUTOSCALING_KEYS = tuple(Autoscaling.model_fields)
_WINDOW_STEP = timedelta(seconds=10)
_NODE_GROUP = re.compile(r"^[a-zA-Z0-9_-]+$")
_STRATEGY = re.compile(r"^(?:(?P<pct>\d+)%|\d+)$")
_STRATEGY_MESSAGE = (
    "is not a valid value - must be an integer percentage (e.g. 25%, to denote a percentage of "
    "desired replicas) or a positive integer (e.g. 5, to denote a number of replicas)"
)
MAX_WEIGHT = 100


def parse_networking(raw: dict[str, Any], path: Path) -> Networking:
    f.check_keys(raw, ("endpoint",), path)
    endpoint = f.opt_str(raw, "endpoint", path, None)
    if endpoint is None:
        return Networking()
    return Networking(endpoint=canonical_endpoint(endpoint, (*path, "endpoint")))


def _duration(raw: dict[str, Any], key: str, path: Path, minimum: timedelta) -> timedelta:
    default: timedelta = getattr(_AUTOSCALING_DEFAULTS, key)
    text = f.opt_str(raw, key, path, None, nullable=False)
    if text is None:
        return default
    where = (*path, key)
    try:
        value = parse_duration(text)
    except ValueError:
        raise FieldError(
            where, f'{f.user_str(text)} is not a valid duration (e.g. "10s", "1m30s" or "5m")'
        ) from None
    if value < minimum:
        raise FieldError(
            where,
            f"must be greater than or equal to {format_duration(minimum)} (got {f.user_str(text)})",
        )
    return value


def _replicas(raw: dict[str, Any], path: Path) -> tuple[int, int, int | None]:
    min_replicas = f.opt_int(raw, "min_replicas", path, _AUTOSCALING_DEFAULTS.min_replicas)
    f.check_range(min_replicas, (*path, "min_replicas"), ge=0)
    max_replicas = f.opt_int(raw, "max_replicas", path, _AUTOSCALING_DEFAULTS.max_replicas)
    f.check_range(max_replicas, (*path, "max_replicas"), gt=0)
    init_replicas = f.opt_int_or_none(raw, "init_replicas", path)
    if init_replicas is not None:
        f.check_range(init_replicas, (*path, "init_replicas"), ge=0)
    return min_replicas, max_replicas, init_replicas


def _factors(raw: dict[str, Any], path: Path) -> dict[str, float]:
    """The four float knobs with their SPEC 11.3 ranges."""
    bounds: dict[str, dict[str, float]] = {
        "max_downscale_factor": {"ge": 0, "lt": 1},
        "max_upscale_factor": {"gt": 1},
        "downscale_tolerance": {"ge": 0, "lt": 1},
        "upscale_tolerance": {"ge": 0},
    }
    out: dict[str, float] = {}
    for key, limits in bounds.items():
        value = f.opt_float(raw, key, path, getattr(_AUTOSCALING_DEFAULTS, key))
        assert value is not None  # every factor has a default
        f.check_range(value, (*path, key), **limits)
        out[key] = value
    return out


def parse_autoscaling(raw: dict[str, Any], kind: Kind, pod: PodSpec, path: Path) -> Autoscaling:
    """``autoscaling`` of a Realtime / Async API, with the cross-field rules of SPEC 11.3."""
    f.check_keys(raw, _AUTOSCALING_KEYS, path)
    min_replicas, max_replicas, init_replicas = _replicas(raw, path)
    target = f.opt_float(raw, "target_in_flight", path, None)
    if target is not None:
        f.check_range(target, (*path, "target_in_flight"), gt=0)
    window = _duration(raw, "window", path, _WINDOW_STEP)
    if window % _WINDOW_STEP:
        raise FieldError((*path, "window"), f"{format_duration(window)} is not a multiple of 10s")
    spec = Autoscaling(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        init_replicas=init_replicas,
        target_in_flight=target,
        window=window,
        downscale_stabilization_period=_duration(
            raw, "downscale_stabilization_period", path, timedelta(0)
        ),
        upscale_stabilization_period=_duration(
            raw, "upscale_stabilization_period", path, timedelta(0)
        ),
        **_factors(raw, path),
    )
    _check_autoscaling(spec, kind, pod, path)
    return spec


def _check_autoscaling(spec: Autoscaling, kind: Kind, pod: PodSpec, path: Path) -> None:
    lo, hi, init = spec.min_replicas, spec.max_replicas, spec.init_replicas
    if lo > hi:
        raise FieldError(path, f"min_replicas cannot be greater than max_replicas ({lo} > {hi})")
    if init is not None and init > hi:
        raise FieldError(path, f"init_replicas cannot be greater than max_replicas ({init} > {hi})")
    if init is not None and init < lo:
        raise FieldError(path, f"init_replicas cannot be less than min_replicas ({init} < {lo})")
    target = spec.target_in_flight
    capacity = pod.max_concurrency + pod.max_queue_length
    if kind == Kind.REALTIME_API and target is not None and target > capacity:
        raise FieldError(
            path,
            "target_in_flight cannot be greater than max_concurrency + max_queue_length "
            f"({target:f} > {pod.max_concurrency} + {pod.max_queue_length})",
        )


def _strategy_value(raw: dict[str, Any], key: str, path: Path) -> str:
    value = raw.get(key, "25%")
    where = (*path, key)
    if value is None:
        raise FieldError(where, f.NULL_OPTIONAL)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise f.invalid_type(where, value, "string or integer")
    text = str(value)
    match = _STRATEGY.match(text)
    if match is None or (match["pct"] is not None and int(match["pct"]) > 100):
        raise FieldError(where, f'"{text}" {_STRATEGY_MESSAGE}')
    return text


def parse_update_strategy(raw: dict[str, Any], path: Path) -> UpdateStrategy:
    """``update_strategy``: ``max_surge`` / ``max_unavailable`` as ``N%`` or a count, not both 0."""
    f.check_keys(raw, ("max_surge", "max_unavailable"), path)
    surge = _strategy_value(raw, "max_surge", path)
    unavailable = _strategy_value(raw, "max_unavailable", path)
    if surge.rstrip("%") == "0" and unavailable.rstrip("%") == "0":
        raise FieldError(path, "max_surge and max_unavailable cannot both be zero")
    return UpdateStrategy(max_surge=surge, max_unavailable=unavailable)


def parse_node_groups(raw: dict[str, Any], path: Path) -> list[str] | None:
    """``node_groups``: null/absent means every group; a given list must be non-empty."""
    groups = f.opt_str_list(raw, "node_groups", path)
    if groups is None:
        return None
    if not groups:
        raise FieldError((*path, "node_groups"), "must contain at least 1 elements")
    for i, group in enumerate(groups):
        if not _NODE_GROUP.match(group):
            raise FieldError(
                (*path, "node_groups", f.index(i)),
                f"{f.user_str(group)} must contain only letters, numbers, underscores and dashes",
            )
    return groups


def _target(item: Any, path: Path) -> TrafficSplitTarget:
    raw = f.as_map(item, path)
    f.check_keys(raw, ("name", "weight", "shadow"), path)
    name = f.req_str(raw, "name", path)
    weight = f.req_int(raw, "weight", path)
    f.check_range(weight, (*path, "weight"), ge=0, le=MAX_WEIGHT)
    shadow = f.opt_bool(raw, "shadow", path, False)
    return TrafficSplitTarget(name=name, weight=weight, shadow=shadow)


def parse_splitter_apis(raw: dict[str, Any], path: Path) -> list[TrafficSplitTarget]:
    """A TrafficSplitter's ``apis`` (SPEC 9): weights of non-shadow targets sum to 100, names
    unique, at most one shadow. Whether targets exist as RealtimeAPIs is the operator's check.
    """
    items = f.req_list(raw, "apis", path)
    where = (*path, "apis")
    targets = [_target(item, (*where, f.index(i))) for i, item in enumerate(items)]
    total = sum(t.weight for t in targets if not t.shadow)
    if total != MAX_WEIGHT:
        raise FieldError(
            where, f"expected weights of all non-shadow apis to sum to 100 but found {total}"
        )
    counts = Counter(t.name for t in targets)
    duplicates = [name for name, n in counts.items() if n > 1]
    if duplicates:
        noun = "api" if len(duplicates) == 1 else "apis"
        raise FieldError(where, f"{noun} not unique: {f.str_and(duplicates)}")
    if sum(t.shadow for t in targets) > 1:
        raise FieldError(
            where,
            "multiple shadow apis detected; only one api is allowed to be marked as a shadow",
        )
    return targets
