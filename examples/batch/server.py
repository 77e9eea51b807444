"""BatchAPI worker server: classifies batches of flowers with the realtime example's iris model
(scikit-learn logistic regression) and writes the predictions to a results folder.

The job spec (``CORTEX_JOB_SPEC_PATH``) gives the job's id and its ``config``:

* ``results_dir`` (default ``results``, relative to this folder): predictions go to
  ``<results_dir>/<job_id>/``;
* ``model_path`` (optional): a pickled model written by examples/task; without it the model is
  trained at start-up on the iris data set that ships with scikit-learn.

``POST /`` takes one batch (a JSON array of flowers, as in flowers.jsonl) and writes one file of
JSON lines, ``{"id", "label"}`` per flower, named after the batch's content: a batch delivered
again (after a worker died) overwrites its own file, so nothing is counted twice.
``POST /on-job-complete`` (called once, after the last batch) writes ``summary.json`` with the
number of flowers classified and the count per label.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sklearn.datasets import load_iris  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]


class Flower(BaseModel):
    id: int | str | None = None
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


def _job() -> tuple[str, dict[str, Any]]:
    spec = json.loads(Path(os.environ["CORTEX_JOB_SPEC_PATH"]).read_text())
    return str(spec["job_id"]), dict(spec.get("config") or {})


def _model(config: dict[str, Any]) -> tuple[Any, list[str]]:
    if config.get("model_path"):
        with open(config["model_path"], "rb") as f:
            saved = pickle.load(f)
        return saved["model"], list(saved["labels"])
    data = load_iris()
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    return model, [str(name) for name in data.target_names]


JOB_ID, CONFIG = _job()
MODEL, LABELS = _model(CONFIG)
OUT = Path(CONFIG.get("results_dir") or "results") / JOB_ID
OUT.mkdir(parents=True, exist_ok=True)
app = FastAPI(title="iris-batch")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/")
async def classify(request: Request) -> dict[str, int]:
    body = await request.body()
    flowers = [Flower.model_validate(item) for item in json.loads(body)]
    features = [[f.sepal_length, f.sepal_width, f.petal_length, f.petal_width] for f in flowers]
    predicted = MODEL.predict(features) if features else []
    lines = [
        json.dumps({"id": f.id, "label": LABELS[int(p)]}) + "\n"
        for f, p in zip(flowers, predicted, strict=True)
    ]
    name = hashlib.sha256(body).hexdigest()[:16]
    _write(OUT / f"batch-{name}.jsonl", "".join(lines))
    return {"classified": len(lines)}


@app.post("/on-job-complete")
def on_job_complete() -> dict[str, Any]:
    labels: Counter[str] = Counter()
    for part in sorted(OUT.glob("batch-*.jsonl")):
        labels.update(json.loads(line)["label"] for line in part.read_text().splitlines())
    summary = {"job_id": JOB_ID, "classified": sum(labels.values()), "labels": dict(labels)}
    _write(OUT / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
