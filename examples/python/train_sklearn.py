"""A scikit-learn grid search logged as runtel runs over OpenTelemetry.

Logistic regression trained by SGD on scikit-learn's bundled breast-cancer data set (no download),
a grid over the L2 strength ``alpha`` and the learning rate ``eta0`` (``ParameterGrid``), scored on
a held-out validation split. The search is a parent run; each candidate is a nested run with its
params and per-epoch curves (``train/loss``, ``val/loss``, ``val/accuracy``); the parent logs the
best validation accuracy so far after each candidate, and tags the winner.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python train_sklearn.py [--epochs 20]

Send it to a collector running collector-config/agent.yaml (or `docker compose up -d`) to see the
runs in MLflow (through the runtel bridge), the traces in Jaeger and the curves in Grafana.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import ParameterGrid, train_test_split
from sklearn.preprocessing import StandardScaler

from runtel_otel import RuntelOtel

GRID = {"alpha": [1e-4, 1e-2], "eta0": [0.001, 0.01, 0.1]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=os.environ.get("RUNTEL_EXPERIMENT") or "sklearn-breast-cancer")
    parser.add_argument("--epochs", type=int, default=20, help="SGD epochs per candidate (default 20)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--summary-json", help="also write the run ids and what was logged to this file")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    data = load_breast_cancer()
    x_train, x_val, y_train, y_val = train_test_split(data.data, data.target, test_size=0.25, stratify=data.target, random_state=args.seed)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(data.target)
    candidates = list(ParameterGrid(GRID))

    otel = RuntelOtel(experiment=args.experiment)
    summary: dict = {"experiment": args.experiment, "epochs": args.epochs, "trials": []}
    try:
        with otel.start_run(
            "grid-search",
            params={
                "dataset": "breast_cancer",
                "model": "SGDClassifier(loss=log_loss)",
                "grid": {k: list(v) for k, v in GRID.items()},
                "epochs": args.epochs,
                "seed": args.seed,
                "train_size": len(y_train),
                "val_size": len(y_val),
            },
            tags={"example": "python-sklearn"},
        ) as search:
            summary["parent"] = {"id": search.id, "name": search.name}
            best = (-1.0, None, None)  # (val accuracy, run, params)
            for index, params in enumerate(candidates):
                name = f"alpha={params['alpha']:g},eta0={params['eta0']:g}"
                with otel.start_run(name, parent=search, params={**params, "candidate": index}) as trial:
                    model = SGDClassifier(loss="log_loss", penalty="l2", learning_rate="constant", random_state=args.seed, **params)
                    for epoch in range(args.epochs):
                        model.partial_fit(x_train, y_train, classes=classes)
                        p_train = model.predict_proba(x_train)
                        p_val = model.predict_proba(x_val)
                        metrics = {
                            "train/loss": log_loss(y_train, p_train, labels=classes),
                            "val/loss": log_loss(y_val, p_val, labels=classes),
                            "val/accuracy": accuracy_score(y_val, model.predict(x_val)),
                        }
                        trial.log_metrics(metrics, step=epoch)
                    val_acc = float(metrics["val/accuracy"])
                    summary["trials"].append({"id": trial.id, "name": name, "params": params, "final": {k: float(v) for k, v in metrics.items()}})
                if val_acc > best[0]:
                    best = (val_acc, trial, params)
                search.log_metrics({"best/val_accuracy": best[0]}, step=index)
                print(f"{name:28s} val/accuracy={val_acc:.4f} val/loss={metrics['val/loss']:.4f}", flush=True)
            search.set_tags({"best_run_id": best[1].id, "best_run_name": best[1].name})
            print(f"best: {best[1].name} val/accuracy={best[0]:.4f}", flush=True)
    finally:
        t0 = time.monotonic()
        otel.shutdown()
        print(f"exported in {time.monotonic() - t0:.2f}s", file=sys.stderr)
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
