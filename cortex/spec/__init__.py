"""What users write: API specs (``cortex.yaml``) as typed models, parsed and validated with
errors that name the field path (SPEC 11), plus the values derived from them (ids, defaults).

Modules: ``kinds`` (the five kinds), ``quantity`` / ``duration`` (k8s quantities, Go
durations), ``models`` (pydantic models), ``parse`` (``load_apis``, ``parse_api``),
``resolved`` (derived defaults, ids, spec JSON). ``fields``, ``paths``, ``pod`` and
``sections`` are the validators behind ``parse``.
"""

from cortex.spec.kinds import Kind
from cortex.spec.models import ApiSpec
from cortex.spec.parse import load_apis, parse_api
from cortex.spec.quantity import Quantity

__all__ = ["ApiSpec", "Kind", "Quantity", "load_apis", "parse_api"]
