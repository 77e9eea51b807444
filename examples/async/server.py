"""Handwritten-digit classifier for an AsyncAPI: a scikit-learn logistic regression trained at
start-up on the 8x8 digits data set that ships with scikit-learn (no download).

Each request takes a moment on purpose, so that "async" means something: after the model's
answer the server holds the request until ``WORK_S`` seconds (default 0.3) have passed since it
arrived, standing in for a heavier model. The dequeuer POSTs the submitted payload here and
stores the JSON answer as the request's result.

Request:  POST /  {"pixels": [64 numbers, 0..16, row by row]}
Answer:   {"digit": 5, "confidence": 0.99, "probabilities": [10 numbers]}
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sklearn.datasets import load_digits  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

WORK_S = float(os.environ.get("WORK_S", "0.3"))


class Image(BaseModel):
    pixels: list[float] = Field(min_length=64, max_length=64)


def _train() -> LogisticRegression:
    data = load_digits()
    return LogisticRegression(max_iter=2000).fit(data.data / 16.0, data.target)


MODEL = _train()
app = FastAPI(title="digits")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/")
def predict(image: Image) -> dict[str, object]:
    started = time.monotonic()
    probabilities = MODEL.predict_proba([[p / 16.0 for p in image.pixels]])[0]
    best = int(probabilities.argmax())
    time.sleep(max(0.0, WORK_S - (time.monotonic() - started)))
    return {
        "digit": best,
        "confidence": round(float(probabilities[best]), 4),
        "probabilities": [round(float(p), 4) for p in probabilities],
    }
