"""BatchAPI and TaskAPI jobs, operator side (SPEC 6-8).

* :mod:`.models`: :class:`~.models.JobStatus` (wire codes) and the stored job record;
* :mod:`.job_store`: the job table in the operator's SQLite database;
* :mod:`.submit`: checking submission bodies;
* :mod:`.enqueuer`: a submission's batches onto the job's queue;
* :mod:`.workers`: worker replicas, the job spec file, metrics and dead letters;
* :mod:`.status`: how the workers' states decide the job's status (pure);
* :mod:`.manager`: the loop that drives every job, and submit/get/stop;
* :mod:`.routes`: the unauthenticated ``/batch/{api}`` and ``/tasks/{api}`` routes.

The manager's timers (``CORTEX_JOB_*``) are :class:`cortex.operator.settings.JobSettings`.
"""
