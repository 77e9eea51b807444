"""Creating a job's workers: the job spec file, then ``workers`` worker replicas.

The replicas come from :func:`.workers.worker_template`; once created, the job is remembered
in ``runtime.launched`` so that, if its workers vanish later, it ends rather than restarts.
"""

from __future__ import annotations

import asyncio
import logging

from cortex.operator.deploy import spec_of
from cortex.operator.jobs import workers
from cortex.operator.jobs.models import JobRecord
from cortex.operator.jobs.runtime import JobRuntime
from cortex.operator.store import ApiRecord

log = logging.getLogger(__name__)


async def launch(rt: JobRuntime, rec: ApiRecord, job: JobRecord) -> None:
    """Write the job spec file (in a thread: this runs in request handlers) and create
    the job's workers."""
    await asyncio.to_thread(workers.write_job_spec, rt.infra.state_dir, job)
    create_workers(rt, rec, job)


def create_workers(rt: JobRuntime, rec: ApiRecord, job: JobRecord) -> None:
    """Create ``job.workers`` replicas of the job's worker template (the spec file exists)."""
    template = workers.worker_template(rec, spec_of(rec), job, rt.infra, rt.settings)
    for _ in range(job.workers):
        created = rt.backend.create_replica(template)
        log.info("created worker %s of job %s", created.replica_id, job.job_id)
    rt.launched.add(job.job_id)
