// Runs across processes and languages through the OpenTelemetry pipeline (issue 13, test 1): a
// launching Node process whose run spawns 3 Node trainers and 1 Python trainer (the example helper
// examples/python/runtel_otel.py) with its childEnv(); every process exports OTLP to a real
// Collector (collector-config/agent.yaml) that feeds a real Jaeger and `runtel bridge serve`, which
// writes a real MLflow (read back with MLflow's own Python client). The trainers start their runs
// with no parent: they nest by the environment (RUNTEL_PARENT_RUN_ID, TRACEPARENT).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCollector, startJaeger, startMlflow } from '../services/index.js';
import type { CollectorHandle, JaegerHandle, MlflowHandle } from '../services/index.js';
import { jaegerTracesWithSpans, parentOf, poll, setupOrFail, tagValue } from '../otel/real/util.js';
import type { JaegerSpan } from '../otel/real/util.js';
import { startBridgeProcess } from '../bridge/pipeline.js';
import type { BridgeProcess } from '../bridge/pipeline.js';
import { COLLECTOR_CONFIG_DIR, collectorEnv, examplePython } from '../deploy/helpers.js';
import { readBackWithPython } from '../mlflow/helpers.js';
import type { PyRun } from '../mlflow/helpers.js';
import { REPO, cleanEnv, launch, nodeTrainer } from './helpers.js';
import type { Launch, TrainerSpec } from './helpers.js';

const TOKEN = 'xproc-bridge-token';
const SERVICE = `runtel-xproc-${process.pid}`;
const EXPERIMENT = `xproc-bridge-${process.pid}`;
const NODE_TRAINERS = 3;

let mlflow: MlflowHandle | undefined;
let jaeger: JaegerHandle | undefined;
let bridge: BridgeProcess | undefined;
let collector: CollectorHandle | undefined;
let out: Launch | undefined;

/** The Python trainer: one run with no parent, as a script using the example helper writes it. */
function pythonTrainer(): TrainerSpec {
  const script = [
    'import json',
    'from runtel_otel import RuntelOtel',
    'otel = RuntelOtel()',
    'with otel.start_run(params={"lang": "python"}) as run:',
    '    for step in range(3):',
    '        run.log_metrics({"loss": 1 / (step + 1)}, step=step)',
    'otel.shutdown()',
    'print(json.dumps({"id": run.id, "name": run.name, "parentId": run.parent_id, "experiment": run.experiment}))',
  ].join('\n');
  return { cmd: examplePython(), args: ['-c', script], cwd: join(REPO, 'examples', 'python') };
}

const ready = setupOrFail(async () => {
  const python = pythonTrainer();
  [mlflow, jaeger] = await Promise.all([startMlflow(), startJaeger()]);
  bridge = await startBridgeProcess(0, { MLFLOW_TRACKING_URI: mlflow.url, RUNTEL_BRIDGE_TOKEN: TOKEN });
  const ce = await collectorEnv({ jaegerEndpoint: `127.0.0.1:${jaeger.otlpGrpcPort}`, bridgeUrl: bridge.url, token: TOKEN });
  delete ce.env.BRIDGE_ENCODING; // agent.yaml's own default: protobuf
  collector = await startCollector(readFileSync(join(COLLECTOR_CONFIG_DIR, 'agent.yaml'), 'utf8'), { env: ce.env, readyUrl: ce.healthUrl });
  const env = cleanEnv({ RUNTEL_BACKENDS: 'otel', OTEL_EXPORTER_OTLP_ENDPOINT: ce.otlpHttpUrl, OTEL_SERVICE_NAME: SERVICE, OTEL_METRIC_EXPORT_INTERVAL: '60000' });
  const trainers = [...Array.from({ length: NODE_TRAINERS }, () => nodeTrainer(['--http'])), python];
  out = await launch('sweep', EXPERIMENT, trainers, env);
}, 300_000);

afterAll(async () => {
  await collector?.stop();
  await bridge?.stop();
  await jaeger?.stop();
  await mlflow?.stop();
});

describe('3 Node trainers and 1 Python trainer launched with childEnv() → Collector → Jaeger and the bridge → MLflow', () => {
  it('every trainer run knows its parent and the parent\'s experiment', () => {
    ready();
    expect(out!.runs).toHaveLength(NODE_TRAINERS + 1);
    expect(out!.childEnv.TRACEPARENT).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    for (const run of out!.runs) expect(run).toMatchObject({ parentId: out!.parent.id, experiment: EXPERIMENT });
    expect(out!.runs.at(-1)!.name).toBe(`sweep-${out!.runs.at(-1)!.id.slice(0, 8)}`);
  });

  it('Jaeger: one trace; the 4 trainer spans are children of the parent\'s span, each Node trainer\'s HTTP call under its own span', async () => {
    ready();
    // The parent, 4 trainers, and per Node trainer an HTTP client and server span.
    const traces = await jaegerTracesWithSpans(jaeger!.queryUrl, SERVICE, 1 + NODE_TRAINERS + 1 + 2 * NODE_TRAINERS, 60_000);
    expect(traces).toHaveLength(1);
    const spans = traces[0]!.spans;
    const runSpan = (id: string): JaegerSpan => {
      const found = spans.filter((s) => tagValue(s, 'ml.run.id') === id);
      expect(found, `span of run ${id}`).toHaveLength(1);
      return found[0]!;
    };
    const parent = runSpan(out!.parent.id);
    expect(parentOf(parent)).toBeUndefined();
    expect(parent.operationName).toBe('sweep');
    out!.runs.forEach((run, i) => {
      const span = runSpan(run.id);
      expect(span.traceID).toBe(parent.traceID);
      expect(parentOf(span), `trainer ${i}`).toBe(parent.spanID);
      expect(tagValue(span, 'ml.run.parent_id')).toBe(out!.parent.id);
      expect(tagValue(span, 'ml.experiment.name')).toBe(EXPERIMENT);
      if (i < NODE_TRAINERS) {
        const calls = spans.filter((s) => tagValue(s, 'span.kind') === 'client' && parentOf(s) === span.spanID);
        expect(calls, `HTTP client span of trainer ${i}`).toHaveLength(1);
        expect(String(tagValue(calls[0]!, 'url.full') ?? tagValue(calls[0]!, 'http.url'))).toMatch(/\/data$/);
      }
    });
  });

  it('MLflow (its Python client): 4 children with the parent\'s mlflow.parentRunId, in the parent\'s experiment', async () => {
    ready();
    const runs = await poll(
      'the 5 runs ended in MLflow',
      async () => {
        const all = await readBackWithPython(mlflow!.url, EXPERIMENT);
        return all.length === NODE_TRAINERS + 2 && all.every((r) => r.status !== 'RUNNING') ? all : undefined;
      },
      90_000,
      1000,
    );
    const byId = new Map<string, PyRun>(runs.map((r) => [r.tags['runtel.run_id']!, r]));
    const parent = byId.get(out!.parent.id)!;
    expect(parent.status).toBe('FINISHED');
    expect(parent.tags['mlflow.parentRunId']).toBeUndefined();
    for (const run of out!.runs) {
      const child = byId.get(run.id)!;
      expect(child.status).toBe('FINISHED');
      expect(child.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(child.tags['mlflow.runName']).toBe(run.name);
      expect(child.metrics.loss!.map((p) => p[0])).toEqual([0, 1, 2]);
    }
    expect(byId.get(out!.runs.at(-1)!.id)!.params).toEqual({ lang: 'python' });
    expect(bridge!.output()).not.toMatch(/failed|error/i);
  });
});
