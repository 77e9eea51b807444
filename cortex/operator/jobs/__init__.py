"""BatchAPI and TaskAPI jobs, operator side (SPEC 6-8).

* :mod:`.models`: :class:`~.models.JobStatus` (wire codes) and the stored job record;
* :mod:`.job_store`: the job table in the operator's SQLite database;
* :mod:`.submit`: checking submission bodies;
* :mod:`.enqueuer`: a submission's batches onto the job's queue;
* :mod:`.workers`: worker replicas, the job spec file, metrics and dead letters;
* :mod:`.status`: how the workers' states decide the job's status (pure);
* :mod:`.runtime`: the state the manager's parts share (outside systems, lock, memory);
* :mod:`.starting`: submitting a job, up to its enqueue or its task's worker;
* :mod:`.enqueue_tasks`: a batch job's enqueue as a named task, then its workers;
* :mod:`.launching`: creating a job's workers;
* :mod:`.ending`: ending a job (workers deleted, results kept, queues deleted);
* :mod:`.views`: lookups, the GET/DELETE responses and the pure ``job_status`` view;
* :mod:`.manager`: :class:`~.manager.JobManager`, the loop that drives every job, and the
  entry points the routes call;
* :mod:`.routes`: the unauthenticated ``/batch/{api}`` and ``/tasks/{api}`` routes.

The manager's timers (``CORTEX_JOB_*``) are :class:`cortex.operator.settings.JobSettings`.
"""
