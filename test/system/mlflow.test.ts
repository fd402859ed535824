// System metrics into a real MLflow, read back with MLflow's own Python client:
//  1. `runtel demo` (the built CLI) with RUNTEL_SYSTEM_METRICS=true, straight to MLflow;
//  3. the same demo through OpenTelemetry: OTLP/HTTP → a real Collector → the bridge → MLflow.
// Either way the top-level run has every `system/*` key (but GPU) with ≥ 2 points, steps 0, 1, …,
// timestamps within the run; its nested trials have none (they share its machine).
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { DEMO_EXPERIMENT } from '../../src/demo/runDemo.js';
import { startMlflow } from '../services/index.js';
import type { CollectorHandle, MlflowHandle } from '../services/index.js';
import { setupOrFail } from '../otel/real/util.js';
import { readBackWithPython } from '../mlflow/helpers.js';
import type { PyRun } from '../mlflow/helpers.js';
import { startBridgeCollector } from '../bridge/pipeline.js';
import { MLFLOW_SYSTEM_KEYS, PROCESS_KEYS } from './keys.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));


let mlflow: MlflowHandle | undefined;
let bridge: RuntelBridge | undefined;
let collector: CollectorHandle | undefined;
let otlpUrl = '';

const ready = setupOrFail(async () => {
  mlflow = await startMlflow();
  bridge = await createBridge({ port: 0, mlflow: { trackingUri: mlflow.url, flushIntervalMillis: 200 }, wandb: false, log: () => {} });
}, 300_000);

afterAll(async () => {
  await collector?.stop();
  await bridge?.close();
  await mlflow?.stop();
});

function demo(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-sys-demo-'));
  const clean = { ...process.env };
  for (const k of ['RUNTEL_BACKENDS', 'MLFLOW_TRACKING_URI', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'WANDB_API_KEY']) delete clean[k];
  const full = { ...clean, RUNTEL_DIR: dir, RUNTEL_SYSTEM_METRICS: 'true', RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS: '100', ...env };
  // 40 epochs with a 5 ms pause each: the search runs ~1 s, several sampling intervals.
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'demo', '--epochs', '40', '--epoch-delay', '5'], { env: full, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The demo's runs started since `since`: the top-level search and its trials. */
async function demoRuns(since: number): Promise<{ top: PyRun; trials: PyRun[] }> {
  const runs = (await readBackWithPython(mlflow!.url, DEMO_EXPERIMENT)).filter((r) => r.start_time >= since - 1000);
  const top = runs.filter((r) => r.tags['mlflow.parentRunId'] === undefined);
  expect(top, 'one top-level run').toHaveLength(1);
  return { top: top[0]!, trials: runs.filter((r) => r.tags['mlflow.parentRunId'] === top[0]!.run_id) };
}

function expectSystemMetrics({ top, trials }: { top: PyRun; trials: PyRun[] }): void {
  expect(top.status).toBe('FINISHED');
  expect(trials).toHaveLength(9);
  for (const key of [...MLFLOW_SYSTEM_KEYS, ...PROCESS_KEYS]) {
    const points = top.metrics[key];
    expect(points, `${key} on the top-level run (keys: ${Object.keys(top.metrics).join(', ')})`).toBeDefined();
    expect(points!.length, key).toBeGreaterThanOrEqual(2);
    expect(points!.map(([step]) => step), key).toEqual(points!.map((_, i) => i));
    for (const [, value, timestamp] of points!) {
      expect(typeof value, key).toBe('number');
      expect(timestamp, `${key} within the run`).toBeGreaterThanOrEqual(top.start_time);
      expect(timestamp, `${key} within the run`).toBeLessThanOrEqual(top.end_time!);
    }
  }
  const pct = top.metrics['system/system_memory_usage_percentage']!.map(([, v]) => v as number);
  expect(pct.every((v) => v > 0 && v < 100)).toBe(true);
  for (const trial of trials) expect(Object.keys(trial.metrics).filter((k) => k.startsWith('system/')), trial.tags['mlflow.runName']).toEqual([]);
}

describe('system metrics in MLflow (its Python client reads them back)', () => {
  it('1. runtel demo straight to MLflow', async () => {
    ready();
    const since = Date.now();
    const result = await demo({ RUNTEL_BACKENDS: 'jsonl,mlflow', MLFLOW_TRACKING_URI: mlflow!.url });
    expect(result.code, result.stderr).toBe(0);
    expectSystemMetrics(await demoRuns(since));
  }, 180_000);

  it('3. runtel demo through OTLP → Collector → bridge → MLflow', async () => {
    ready();
    ({ collector, otlpUrl } = await startBridgeCollector(bridge!.url));
    const since = Date.now();
    const result = await demo({ RUNTEL_BACKENDS: 'otel', OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_SERVICE_NAME: 'system-metrics-demo' });
    expect(result.code, result.stderr).toBe(0);
    // The bridge acknowledges after MLflow has the data, the collector forwards on its own: wait for the run's end.
    let runs: { top: PyRun; trials: PyRun[] } | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const all = (await readBackWithPython(mlflow!.url, DEMO_EXPERIMENT)).filter((r) => r.start_time >= since - 1000 && r.tags['mlflow.parentRunId'] === undefined);
      if (all.length === 1 && all[0]!.status === 'FINISHED' && MLFLOW_SYSTEM_KEYS.every((k) => (all[0]!.metrics[k]?.length ?? 0) >= 2)) {
        runs = await demoRuns(since);
        if (runs.trials.every((t) => t.status === 'FINISHED')) break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(runs, 'the demo run with its system metrics in MLflow').toBeDefined();
    expectSystemMetrics(runs!);
  }, 180_000);
});
