// OTLP/gRPC from the OpenTelemetry Python SDK's gRPC exporters (examples/python/runtel_otel.py with
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc), straight into the bridge's gRPC port with the bearer token as
// metadata, and on into a real MLflow, read back with MLflow's own Python client.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { startMlflow } from '../services/index.js';
import type { MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { readBackWithPython } from '../mlflow/helpers.js';
import { REPO_ROOT, examplePython, runCommand } from '../deploy/helpers.js';

const TOKEN = 'grpc-python-token';
const EXPERIMENT = 'py-grpc';
const STEPS = 50;

let mlflow: MlflowHandle | undefined;
let bridge: RuntelBridge | undefined;

const ready = setupOrFail(async () => {
  mlflow = await startMlflow();
  bridge = await createBridge({ port: 0, grpcPort: 0, token: TOKEN, mlflow: { trackingUri: mlflow.url, flushIntervalMillis: 200 }, wandb: false, log: () => undefined });
}, 300_000);

afterAll(async () => {
  await bridge?.close();
  await mlflow?.stop();
});

describe("the Python SDK's OTLP/gRPC exporters → the bridge's gRPC receiver → MLflow", () => {
  it('a parent and two trials arrive with params, every step, nesting and status', async () => {
    ready();
    const script = [
      'import json',
      'from runtel_otel import RuntelOtel',
      `otel = RuntelOtel(experiment=${JSON.stringify(EXPERIMENT)})`,
      'ids = {}',
      'with otel.start_run("search", params={"grid": "lr"}) as parent:',
      '    ids["parent"] = parent.id',
      '    for lr in (0.1, 0.2):',
      '        try:',
      '            with otel.start_run(f"lr={lr}", parent=parent, params={"lr": lr}) as trial:',
      '                ids[str(lr)] = trial.id',
      `                for step in range(${STEPS}):`,
      '                    trial.log_metrics({"loss": lr / (step + 1)}, step=step)',
      '                if lr == 0.2:',
      '                    raise ValueError("diverged")',
      '        except ValueError:',
      '            pass',
      'otel.shutdown()',
      'print(json.dumps(ids))',
    ].join('\n');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${bridge!.grpcPort}`,
      OTEL_EXPORTER_OTLP_INSECURE: 'true',
      OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${TOKEN}`,
      OTEL_METRIC_EXPORT_INTERVAL: '60000',
    };
    for (const key of ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'RUNTEL_EXPERIMENT']) delete env[key];
    const result = await runCommand(examplePython(), ['-c', script], { cwd: join(REPO_ROOT, 'examples/python'), env, timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const ids = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, string>;
    const runs = await poll(
      'three finished runs in MLflow',
      async () => {
        const py = await readBackWithPython(mlflow!.url, EXPERIMENT).catch(() => []);
        return py.length === 3 && py.every((r) => r.status !== 'RUNNING') ? py : undefined;
      },
      60_000,
      1000,
    );
    const parent = runs.find((r) => r.tags['runtel.run_id'] === ids.parent)!;
    expect(parent.status).toBe('FINISHED');
    expect(parent.params).toEqual({ grid: 'lr' });
    for (const lr of ['0.1', '0.2']) {
      const trial = runs.find((r) => r.tags['runtel.run_id'] === ids[lr])!;
      expect(trial.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(trial.status).toBe(lr === '0.2' ? 'FAILED' : 'FINISHED');
      expect(trial.params).toEqual({ lr });
      expect(trial.metrics.loss!.map(([step]) => step)).toEqual(Array.from({ length: STEPS }, (_, i) => i));
    }
    // It came over gRPC, and the token was checked.
    expect(bridge!.stats().grpcResponses.OK).toBeGreaterThan(0);
    expect(bridge!.stats().grpcResponses.UNAUTHENTICATED).toBeUndefined();
    expect(bridge!.stats().accepted).toEqual({});
  }, 240_000);
});
