"""A BatchAPI user server for the job tests: records every item it is sent.

Each POST / carries a batch (a JSON array of ints or {"i": int} objects). The server appends the
item ids to ``$OUT_DIR/<job_id>/items-<pid>.txt`` and answers 200, unless the job's ``config``
(read from ``CORTEX_JOB_SPEC_PATH``) says otherwise: ``fail_items`` (batches holding one of
them get 500), ``sleep_s`` (each batch takes that long). POST /on-job-complete appends a line to
``$OUT_DIR/<job_id>/complete.txt``.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = os.environ["OUT_DIR"]
with open(os.environ["CORTEX_JOB_SPEC_PATH"]) as spec_file:
    SPEC = json.load(spec_file)
CONFIG = SPEC.get("config") or {}
FOLDER = os.path.join(OUT, SPEC["job_id"])
os.makedirs(FOLDER, exist_ok=True)
FAIL = set(CONFIG.get("fail_items", []))


def item_id(item):
    return item["i"] if isinstance(item, dict) else item


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/on-job-complete":
            with open(os.path.join(FOLDER, "complete.txt"), "a") as f:
                f.write(self.headers.get("X-Cortex-Job-ID", "") + "\n")
            return self.answer(200)
        ids = [item_id(x) for x in json.loads(body)]
        if CONFIG.get("sleep_s"):
            time.sleep(CONFIG["sleep_s"])
        if FAIL.intersection(ids):
            return self.answer(500)
        with open(os.path.join(FOLDER, f"items-{os.getpid()}.txt"), "a") as f:
            f.write("".join(f"{i}\n" for i in ids))
        self.answer(200)

    def answer(self, code):
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


ThreadingHTTPServer(("127.0.0.1", int(os.environ["CORTEX_PORT"])), Handler).serve_forever()
