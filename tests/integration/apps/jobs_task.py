"""A TaskAPI program for the job tests; the job's ``config.mode`` says what it does:
``ok`` (write ``$OUT_DIR/<job_id>.done``, exit 0), ``fail`` (exit 3), ``oom`` (hold far more
memory than its limit), ``sleep`` (sleep ``config.sleep_s``)."""

import json
import os
import sys
import time

with open(os.environ["CORTEX_JOB_SPEC_PATH"]) as spec_file:
    spec = json.load(spec_file)
config = spec.get("config") or {}
mode = config.get("mode", "ok")
print(f"task {spec['job_id']} mode {mode}", flush=True)
if mode == "ok":
    with open(os.path.join(os.environ["OUT_DIR"], spec["job_id"] + ".done"), "w") as f:
        f.write(json.dumps(config))
    sys.exit(0)
if mode == "fail":
    sys.exit(3)
if mode == "oom":
    hog = bytearray(400 * 2**20)
    for i in range(0, len(hog), 4096):
        hog[i] = 1
time.sleep(float(config.get("sleep_s", 60)))
