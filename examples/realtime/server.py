"""Iris classifier behind FastAPI: the model is trained at start-up on the iris data set that
ships with scikit-learn, so the example needs no download.

Request:  POST /  {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
Answer:   {"label": "setosa", "probabilities": {"setosa": 0.97, ...}}
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


class Flower(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


def _train() -> tuple[LogisticRegression, list[str]]:
    data = load_iris()
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    return model, [str(name) for name in data.target_names]


MODEL, LABELS = _train()
app = FastAPI(title="iris")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/")
def predict(flower: Flower) -> dict[str, object]:
    features = [[flower.sepal_length, flower.sepal_width, flower.petal_length, flower.petal_width]]
    probabilities = MODEL.predict_proba(features)[0]
    best = int(probabilities.argmax())
    return {
        "label": LABELS[best],
        "probabilities": {
            name: round(float(p), 4) for name, p in zip(LABELS, probabilities, strict=True)
        },
        "replica": os.environ.get("HOSTNAME", "") or os.environ.get("CORTEX_PORT", ""),
    }
