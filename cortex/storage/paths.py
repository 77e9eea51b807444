"""Every storage key, built in one place (SPEC 0.7's layout, adapted).

Keys are relative to the store's root URL, which plays the part of SPEC's
``<bucket>/<cluster_uid>`` (``<state_dir>/storage`` locally, ``s3://bucket/<cluster>`` on a
cluster). Differences from SPEC 0.7 and why:

* no ``<v>`` (version) segment: one deployment's store holds one version's objects;
* a status is one small JSON object, ``status.json`` = ``{"status": ..., "timestamp": ...}``
  (see :func:`status_record`), instead of one empty marker object per status: a poll is one
  GET instead of a LIST plus a GET, and a replace is atomic in every store. Writers keep a
  causal order instead of relying on marker precedence: the async gateway writes ``in_queue``
  before it enqueues; a worker writes ``result.json`` before ``completed``;
* BatchAPI dead-lettered batches are kept under the job (``dead_letter/<message_id>.json``) so
  they can be listed and stay with the job's other objects.

Layout::

    apis/<api>/api/<api_id>/spec.json                       a deployed version's spec
    workloads/<api>/<request_id>/payload                    AsyncAPI request body (deleted after)
    workloads/<api>/<request_id>/headers.json               {"Header-Name": ["v1", ...]}
    workloads/<api>/<request_id>/result.json                the user's JSON result
    workloads/<api>/<request_id>/status.json                {"status", "timestamp"}
    jobs/<Kind>/<api>/<job_id>/spec.json                    BatchAPI/TaskAPI job spec
    jobs/<Kind>/<api>/<job_id>/status.json                  {"status", "timestamp"}
    jobs/BatchAPI/<api>/<job_id>/payload.json               submission (deleted after enqueuing)
    jobs/BatchAPI/<api>/<job_id>/max_batch_count            total batches, a decimal string
    jobs/BatchAPI/<api>/<job_id>/metrics.json               {"succeeded", "failed", ...}
    jobs/BatchAPI/<api>/<job_id>/dead_letter/<msg_id>.json  a dead-lettered batch

Every name argument is checked as one path segment (:func:`check_segment`): an id taken from a
URL cannot climb out of its folder. Ids themselves come from ``cortex.spec.resolved``.
"""

from __future__ import annotations

from typing import Any

from cortex.spec.kinds import Kind
from cortex.storage.base import InvalidKeyError, check_segment

APIS = "apis"
WORKLOADS = "workloads"
JOBS = "jobs"
JOB_KINDS = frozenset({Kind.BATCH_API, Kind.TASK_API})

STATUS_FILE = "status.json"


def status_record(status: str, timestamp: float) -> dict[str, Any]:
    """The JSON stored at a status key: the status string and unix seconds it was set."""
    return {"status": str(status), "timestamp": timestamp}


# APIs


def api_prefix(api_name: str) -> str:
    """Everything stored about an API's deployed versions."""
    return f"{APIS}/{check_segment(api_name)}"


def api_spec_key(api_name: str, api_id: str) -> str:
    return f"{api_prefix(api_name)}/api/{check_segment(api_id)}/spec.json"


# AsyncAPI workloads


def workloads_prefix(api_name: str) -> str:
    """All requests of an AsyncAPI; ``list_dirs`` of it gives the request ids."""
    return f"{WORKLOADS}/{check_segment(api_name)}"


def workload_prefix(api_name: str, request_id: str) -> str:
    """One request's folder; ``delete_prefix`` of it removes the request."""
    return f"{workloads_prefix(api_name)}/{check_segment(request_id)}"


def workload_payload_key(api_name: str, request_id: str) -> str:
    return f"{workload_prefix(api_name, request_id)}/payload"


def workload_headers_key(api_name: str, request_id: str) -> str:
    return f"{workload_prefix(api_name, request_id)}/headers.json"


def workload_result_key(api_name: str, request_id: str) -> str:
    return f"{workload_prefix(api_name, request_id)}/result.json"


def workload_status_key(api_name: str, request_id: str) -> str:
    return f"{workload_prefix(api_name, request_id)}/{STATUS_FILE}"


# BatchAPI and TaskAPI jobs


def jobs_prefix(kind: Kind, api_name: str) -> str:
    """All jobs of an API; ``list_dirs`` of it gives the job ids, newest first (SPEC 0.5)."""
    if kind not in JOB_KINDS:
        raise InvalidKeyError(f"{kind} has no jobs (only BatchAPI and TaskAPI do)")
    return f"{JOBS}/{Kind(kind).value}/{check_segment(api_name)}"


def job_prefix(kind: Kind, api_name: str, job_id: str) -> str:
    """One job's folder; ``delete_prefix`` of it removes the job."""
    return f"{jobs_prefix(kind, api_name)}/{check_segment(job_id)}"


def job_spec_key(kind: Kind, api_name: str, job_id: str) -> str:
    return f"{job_prefix(kind, api_name, job_id)}/spec.json"


def job_status_key(kind: Kind, api_name: str, job_id: str) -> str:
    return f"{job_prefix(kind, api_name, job_id)}/{STATUS_FILE}"


def job_payload_key(api_name: str, job_id: str) -> str:
    """The BatchAPI submission the enqueuer reads, then deletes."""
    return f"{job_prefix(Kind.BATCH_API, api_name, job_id)}/payload.json"


def job_max_batch_count_key(api_name: str, job_id: str) -> str:
    return f"{job_prefix(Kind.BATCH_API, api_name, job_id)}/max_batch_count"


def job_metrics_key(api_name: str, job_id: str) -> str:
    return f"{job_prefix(Kind.BATCH_API, api_name, job_id)}/metrics.json"


def job_dead_letter_prefix(api_name: str, job_id: str) -> str:
    """The job's dead-lettered batches; ``list`` of it gives their keys."""
    return f"{job_prefix(Kind.BATCH_API, api_name, job_id)}/dead_letter"


def job_dead_letter_key(api_name: str, job_id: str, message_id: str) -> str:
    return f"{job_dead_letter_prefix(api_name, job_id)}/{check_segment(message_id)}.json"


def api_prefixes(api_name: str) -> list[str]:
    """Every prefix holding an API's objects, for ``cortex delete`` without ``--keep-cache``."""
    return [
        api_prefix(api_name),
        workloads_prefix(api_name),
        *(jobs_prefix(kind, api_name) for kind in sorted(JOB_KINDS)),
    ]


def job_worker_metrics_key(api_name: str, job_id: str, worker_id: str) -> str:
    """One batch worker's counts, JSON ``{"succeeded", "failed", "time_sum_s"}``; the job's
    totals are the sums over ``list`` of the ``worker_metrics`` folder beside this key."""
    prefix = job_prefix(Kind.BATCH_API, api_name, job_id)
    return f"{prefix}/worker_metrics/{check_segment(worker_id)}.json"
