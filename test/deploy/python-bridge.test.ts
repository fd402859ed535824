// Any language, for real: examples/python (a scikit-learn grid search logged with the OpenTelemetry
// Python SDK through examples/python/runtel_otel.py) → a real collector running
// collector-config/agent.yaml (otlphttp to the bridge: protobuf + gzip, its default, with the bearer
// token) → `runtel bridge serve` (the built CLI) → a real MLflow. Asserts the MLflow runs: params,
// every metric step, nesting, status; and a failing Python run with NaN/±Infinity values.
// The venv comes from `bash scripts/provision-example.sh`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import { startCollector, startJaeger, startMlflow } from '../services/index.js';
import type { CollectorHandle, JaegerHandle, MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { mlflowRunsFor, paramsOf, startBridgeProcess, tagsOf } from '../bridge/pipeline.js';
import type { BridgeProcess } from '../bridge/pipeline.js';
import { COLLECTOR_CONFIG_DIR, REPO_ROOT, collectorEnv, examplePython, runCommand, runFailingPythonRuns } from './helpers.js';
import type { CollectorEnv } from './helpers.js';

const EPOCHS = 5;
const ALPHAS = [1e-4, 1e-2];
const ETA0S = [0.001, 0.01, 0.1];
const CANDIDATES = ALPHAS.length * ETA0S.length;
const TRIAL_KEYS = ['train/loss', 'val/accuracy', 'val/loss'];
const TOKEN = 'python-bridge-token';
const EXPERIMENT = `py-bridge-${process.pid}`;

interface Summary {
  parent: { id: string; name: string };
  trials: Array<{ id: string; name: string; params: { alpha: number; eta0: number }; final: Record<string, number> }>;
}

let mlflow: MlflowHandle | undefined;
let jaeger: JaegerHandle | undefined;
let bridge: BridgeProcess | undefined;
let collector: CollectorHandle | undefined;
let client: MlflowClient;
let ce: CollectorEnv | undefined;
let summary: Summary | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'runtel-python-bridge-'));

/** The environment of a Python program that exports to the test's collector. */
function pythonEnv(experiment: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: ce!.otlpHttpUrl, OTEL_METRIC_EXPORT_INTERVAL: '60000' };
  for (const key of ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_HEADERS', 'RUNTEL_EXPERIMENT']) delete env[key];
  if (experiment !== undefined) env.RUNTEL_EXPERIMENT = experiment;
  return env;
}

const ready = setupOrFail(async () => {
  const python = examplePython();
  [mlflow, jaeger] = await Promise.all([startMlflow(), startJaeger()]);
  client = new MlflowClient({ trackingUri: mlflow.url, retryTimeoutMillis: 10_000 });
  bridge = await startBridgeProcess(0, { MLFLOW_TRACKING_URI: mlflow.url, RUNTEL_BRIDGE_TOKEN: TOKEN });
  ce = await collectorEnv({ jaegerEndpoint: `127.0.0.1:${jaeger.otlpGrpcPort}`, bridgeUrl: bridge.url, token: TOKEN });
  // agent.yaml's own default: protobuf (the tests of the collector alone use json for their sink).
  delete ce.env.BRIDGE_ENCODING;
  collector = await startCollector(readFileSync(join(COLLECTOR_CONFIG_DIR, 'agent.yaml'), 'utf8'), { env: ce.env, readyUrl: ce.healthUrl });
  const summaryFile = join(tmp, 'summary.json');
  const result = await runCommand(python, ['train_sklearn.py', '--epochs', String(EPOCHS), '--summary-json', summaryFile], {
    cwd: join(REPO_ROOT, 'examples/python'),
    env: pythonEnv(EXPERIMENT),
    timeoutMs: 120_000,
  });
  if (result.code !== 0) throw new Error(`train_sklearn.py exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary;
}, 300_000);

afterAll(async () => {
  await collector?.stop();
  await bridge?.stop();
  await Promise.all([jaeger?.stop(), client?.close()]);
  await mlflow?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** The one MLflow run of a runtel run id, once it has ended. */
async function endedRun(experiment: string, runtelId: string): Promise<MlflowRun | undefined> {
  const runs = await mlflowRunsFor(client, experiment, runtelId);
  if (runs.length > 1) throw new Error(`${runs.length} MLflow runs for ${runtelId}`);
  return runs[0] !== undefined && runs[0].info.status !== 'RUNNING' ? runs[0] : undefined;
}

describe('examples/python → collector (agent.yaml) → runtel bridge serve → MLflow', () => {
  it('MLflow has the search as a parent run and one nested run per candidate: params, every step, status', async () => {
    ready();
    const s = summary!;
    expect(s.trials).toHaveLength(CANDIDATES);
    const runs = await poll(
      `${CANDIDATES + 1} ended runs in MLflow`,
      async () => {
        const found = new Map<string, MlflowRun>();
        for (const id of [s.parent.id, ...s.trials.map((t) => t.id)]) {
          const run = await endedRun(EXPERIMENT, id);
          if (run === undefined) return undefined;
          found.set(id, run);
        }
        return found;
      },
      60_000,
    );
    const experimentId = (await client.getExperimentIdByName(EXPERIMENT))!;
    expect(await client.searchRuns([experimentId], '', 'ALL')).toHaveLength(CANDIDATES + 1);

    const parent = runs.get(s.parent.id)!;
    expect(parent.info).toMatchObject({ status: 'FINISHED', run_name: 'grid-search' });
    expect(paramsOf(parent)).toMatchObject({ dataset: 'breast_cancer', epochs: String(EPOCHS), 'grid.alpha': '[0.0001,0.01]', 'grid.eta0': '[0.001,0.01,0.1]' });
    expect(tagsOf(parent)['mlflow.parentRunId']).toBeUndefined();
    expect(tagsOf(parent)).toMatchObject({ 'runtel.run_id': s.parent.id, best_run_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const best = await client.getMetricHistory(parent.info.run_id, 'best/val_accuracy');
    expect(best.map((p) => p.step).sort((a, b) => a - b)).toEqual(Array.from({ length: CANDIDATES }, (_, i) => i));
    expect(Math.max(...best.map((p) => Number(p.value)))).toBeCloseTo(Math.max(...s.trials.map((t) => t.final['val/accuracy']!)), 12);
    expect(s.trials.map((t) => t.id)).toContain(tagsOf(parent).best_run_id);

    const grid = new Set<string>();
    for (const trial of s.trials) {
      const run = runs.get(trial.id)!;
      expect(run.info).toMatchObject({ status: 'FINISHED', run_name: trial.name });
      expect(tagsOf(run)['mlflow.parentRunId']).toBe(parent.info.run_id);
      expect(paramsOf(run)).toEqual({ alpha: String(trial.params.alpha), eta0: String(trial.params.eta0), candidate: expect.stringMatching(/^[0-5]$/) });
      expect(Number(run.info.start_time)).toBeGreaterThanOrEqual(Number(parent.info.start_time));
      expect(Number(run.info.end_time)).toBeLessThanOrEqual(Number(parent.info.end_time));
      for (const key of TRIAL_KEYS) {
        const history = await client.getMetricHistory(run.info.run_id, key);
        // Every epoch exactly once; the last one is the value the script reported as final.
        expect(history.map((p) => p.step).sort((a, b) => a - b), `${trial.name} ${key}`).toEqual(Array.from({ length: EPOCHS }, (_, i) => i));
        expect(history.find((p) => p.step === EPOCHS - 1)!.value).toBeCloseTo(trial.final[key]!, 12);
      }
      grid.add(`${trial.params.alpha}/${trial.params.eta0}`);
    }
    expect(grid.size).toBe(CANDIDATES);
    expect(bridge!.output()).not.toMatch(/failed|error/i);
  });

  it('a Python run that raises is FAILED, its parent too; NaN and ±Infinity arrive as MLflow stores them', async () => {
    ready();
    const experiment = `${EXPERIMENT}-failed`;
    const ids = await runFailingPythonRuns(pythonEnv(undefined), experiment, '{"opt": {"name": "sgd", "momentum": 0.9}}', [
      'for step, value in enumerate([0.5, float("nan"), float("inf"), float("-inf"), 2**40]):',
      '    child.log_metrics({"loss": value}, step=step)',
    ]);
    const [parent, child] = await poll(
      'both failed runs in MLflow',
      async () => {
        const [p, c] = [await endedRun(experiment, ids.parent), await endedRun(experiment, ids.child)];
        return p !== undefined && c !== undefined ? ([p, c] as const) : undefined;
      },
      60_000,
    );
    expect(parent.info.status).toBe('FAILED');
    expect(child.info.status).toBe('FAILED');
    expect(paramsOf(parent)).toEqual({ 'opt.name': 'sgd', 'opt.momentum': '0.9' });
    expect(tagsOf(child)['mlflow.parentRunId']).toBe(parent.info.run_id);
    const loss = (await client.getMetricHistory(child.info.run_id, 'loss')).sort((a, b) => a.step - b.step);
    expect(loss.map((p) => p.value)).toEqual([0.5, Number.NaN, Infinity, -Infinity, 2 ** 40]);
  });
});
