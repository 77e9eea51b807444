"""TaskAPI program: trains the iris model (the realtime example's scikit-learn logistic
regression) and writes it to storage.

The job spec (``CORTEX_JOB_SPEC_PATH``) gives the job's id and its ``config``:

* ``output_dir`` (default ``models``, relative to this folder): where the model goes;
* ``max_iter`` (default 1000): the solver's iteration limit;
* ``test_fraction`` (default 0.2): the share of the data held out to measure accuracy.

Writes ``<output_dir>/<job_id>/model.pkl`` (a pickle of ``{"model", "labels", "features"}``,
which examples/batch loads with its ``model_path`` config) and ``metrics.json`` beside it, then
exits 0. Any error exits non-zero, which the job reports as a worker error.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from sklearn.datasets import load_iris  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> None:
    spec = json.loads(Path(os.environ["CORTEX_JOB_SPEC_PATH"]).read_text())
    job_id = str(spec["job_id"])
    config = dict(spec.get("config") or {})
    out = Path(config.get("output_dir") or "models") / job_id
    print(f"training the iris model for job {job_id}", flush=True)

    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data,
        data.target,
        test_size=float(config.get("test_fraction", 0.2)),
        random_state=0,
        stratify=data.target,
    )
    model = LogisticRegression(max_iter=int(config.get("max_iter", 1000)))
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))

    out.mkdir(parents=True, exist_ok=True)
    saved = {"model": model, "labels": [str(n) for n in data.target_names], "features": FEATURES}
    tmp = out / "model.pkl.tmp"
    tmp.write_bytes(pickle.dumps(saved))
    tmp.replace(out / "model.pkl")
    metrics = {"job_id": job_id, "test_accuracy": accuracy, "train_size": len(x_train)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out / 'model.pkl'} (test accuracy {accuracy:.3f})", flush=True)


if __name__ == "__main__":
    main()
