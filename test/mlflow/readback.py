"""Reads runs back through MLflow's own Python client, for the runtel tests.

argv: <tracking uri> <experiment name> <download dir>
Prints JSON: every run of the experiment with params, tags, status, times, every metric point
(NaN and infinities as strings) and each artifact's bytes (hex) as downloaded by MLflow.
"""
import json
import math
import os
import sys

import mlflow
from mlflow.tracking import MlflowClient


def encode(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def main():
    uri, experiment, download_dir = sys.argv[1:4]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    frame = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    runs = []
    for run in frame:
        run_id = run.info.run_id
        metrics = {}
        for key in run.data.metrics:
            history = client.get_metric_history(run_id, key)
            metrics[key] = sorted(
                ([m.step, encode(m.value), m.timestamp] for m in history),
                key=lambda p: (p[0], p[2]),
            )
        artifacts = {}
        target = os.path.join(download_dir, run_id)
        os.makedirs(target, exist_ok=True)
        if client.list_artifacts(run_id):
            local = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=target)
            for root, _dirs, files in os.walk(local):
                for name in files:
                    path = os.path.join(root, name)
                    with open(path, "rb") as f:
                        artifacts[os.path.relpath(path, local)] = f.read().hex()
        runs.append(
            {
                "run_id": run_id,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "params": run.data.params,
                "tags": run.data.tags,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        )
    json.dump(runs, sys.stdout)


main()
