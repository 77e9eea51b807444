"""Writes flowers.jsonl: the 150 flowers of scikit-learn's iris data set, one JSON object a line,
each with an ``id`` and the four measurements the iris model takes (the checked-in file is this
script's output; run it again to recreate it, or pass ``--repeat N`` for a bigger file)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.datasets import load_iris  # type: ignore[import-untyped]

FIELDS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("flowers.jsonl"))
    parser.add_argument("--repeat", type=int, default=1, help="copies of the data set")
    args = parser.parse_args()
    data = load_iris()
    lines = []
    for copy in range(args.repeat):
        for i, row in enumerate(data.data):
            flower: dict[str, float] = {"id": copy * len(data.data) + i}
            flower.update({name: float(v) for name, v in zip(FIELDS, row, strict=True)})
            lines.append(json.dumps(flower) + "\n")
    args.out.write_text("".join(lines))
    print(f"wrote {len(lines)} flowers to {args.out}")


if __name__ == "__main__":
    main()
