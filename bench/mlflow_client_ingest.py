"""MLflow's own Python client, for bench/mlflow-ingest.ts.

argv: <tracking uri> <mode: sync|async> <keys> <steps>
sync: MlflowClient().log_batch with 1000 metrics a request, sequential.
async: the same batches with synchronous=False (MLflow's async logging queue), then waited for.
Prints the seconds spent logging as JSON.
"""
import json
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main():
    uri, mode, keys, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bench-python")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("bench-python")
    run = client.create_run(experiment_id, run_name=f"python-{mode}")
    base = int(time.time() * 1000)
    metrics = [Metric(f"metric_{k}", step * 0.001 + k, base + step, step) for step in range(steps) for k in range(keys)]
    start = time.perf_counter()
    pending = []
    for i in range(0, len(metrics), 1000):
        batch = metrics[i : i + 1000]
        if mode == "sync":
            client.log_batch(run.info.run_id, metrics=batch)
        else:
            pending.append(client.log_batch(run.info.run_id, metrics=batch, synchronous=False))
    for operation in pending:
        operation.wait()
    elapsed = time.perf_counter() - start
    client.set_terminated(run.info.run_id)
    print()
    json.dump({"seconds": elapsed, "points": len(metrics), "run_id": run.info.run_id}, sys.stdout)


main()
