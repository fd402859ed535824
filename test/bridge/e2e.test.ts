// End to end: OtelLogger → OTLP/HTTP protobuf → a real collector (otelcol-runtel: otlp receiver →
// batch → otlphttp exporter, protobuf + gzip, retry_on_failure, sending_queue with 4 consumers) →
// the bridge → a real MLflow. MLflow gets the runs live (the run exists and has points while it is
// still training), then params, every metric step (NaN and ±Infinity as MLflow stores them),
// nesting, statuses, and the artifact as a tag. The end-to-end run goes to MLflow on each store
// (SQLite and PostgreSQL), NaN and ±Infinity read back with MLflow's own Python client too.

import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import { flattenParams } from '../../src/core/params.js';
import { MLFLOW_STORES, startMlflow } from '../services/index.js';
import type { CollectorHandle, MlflowHandle, MlflowStore } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { pyValue, readBackWithPython } from '../mlflow/helpers.js';
import { mlflowRunsFor, otelEmitter, paramsOf, runsTaggedAnywhere, startBridgeCollector, tagsOf } from './pipeline.js';

const EXPERIMENT = 'bridge-e2e';
const STEPS = 300;

/** MLflow on one store, the bridge in front of it, and a collector in front of the bridge. */
interface Pipeline {
  mlflow: MlflowHandle;
  bridge: RuntelBridge;
  collector: CollectorHandle;
  client: MlflowClient;
  otlpUrl: string;
  bridgeLog: string[];
}

const pipelines: Partial<Record<MlflowStore, Pipeline>> = {};

async function startPipeline(store: MlflowStore): Promise<void> {
  const mlflow = await startMlflow({ store });
  const client = new MlflowClient({ trackingUri: mlflow.url, retryTimeoutMillis: 10_000 });
  const bridgeLog: string[] = [];
  const bridge = await createBridge({ port: 0, mlflow: { trackingUri: mlflow.url, flushIntervalMillis: 200 }, wandb: false, log: (line) => bridgeLog.push(line) });
  const { collector, otlpUrl } = await startBridgeCollector(bridge.url);
  pipelines[store] = { mlflow, bridge, collector, client, otlpUrl, bridgeLog };
}

const ready = setupOrFail(async () => {
  await Promise.all(MLFLOW_STORES.map(startPipeline));
}, 300_000);

/** The pipeline to `store`, once the setup has succeeded. */
function pipeline(store: MlflowStore): Pipeline {
  ready();
  return pipelines[store]!;
}

afterAll(async () => {
  await Promise.all(
    Object.values(pipelines).map(async (p) => {
      await p.collector.stop();
      await p.bridge.close();
      await p.client.close();
      await p.mlflow.stop();
    }),
  );
});

/** The value logged for `key` at `step` of child `c`: NaN and ±Infinity among ordinary values. */
function valueAt(c: number, key: 'loss' | 'acc', step: number): number {
  if (key === 'acc') return step / STEPS + c;
  const specials: Record<number, number> = { 7: Number.NaN, 13: Infinity, 17: -Infinity, 19: 1e300 };
  return specials[step % 50] ?? 1 / (step + 1 + c);
}

describe.each(MLFLOW_STORES)('OtelLogger → otelcol-runtel → bridge → MLflow (%s store)', (store) => {
  it('creates the run live, then delivers params, every step, nesting, statuses and the artifact tag', async () => {
    const { mlflow, bridge, collector, client, otlpUrl } = pipeline(store);
    const emitter = otelEmitter(otlpUrl, 'bridge-e2e');
    const config = { lr: 0.01, layers: [64, 32], optimizer: { name: 'adam', beta: 0.9 } };
    const startedAt = Date.now();
    const parent = emitter.logger.startRun({ name: 'grid', experiment: EXPERIMENT, config, tags: { team: 'ml' } });
    const base = Date.now() - 600_000;
    for (let step = 0; step < 10; step++) parent.logMetrics({ best: step }, { step, timestamp: base + step });

    // Live: the run is in MLflow, with points, while it is still running (its span has not ended).
    const live = await poll(
      'the parent run in MLflow while it trains',
      async () => {
        const [run] = await mlflowRunsFor(client, EXPERIMENT, parent.id);
        if (run === undefined || run.info.status !== 'RUNNING') return undefined;
        const points = await client.getMetricHistory(run.info.run_id, 'best');
        return points.length > 0 ? run : undefined;
      },
      60_000,
    );
    expect(parent.status).toBe('running');
    expect(live.info.status).toBe('RUNNING');

    const children = [0, 1, 2].map((c) => emitter.logger.startRun({ name: `trial-${c}`, experiment: EXPERIMENT, parent, config: { c, lr: 0.01 * (c + 1) } }));
    for (let step = 0; step < STEPS; step++) {
      children.forEach((child, c) => child.logMetrics({ loss: valueAt(c, 'loss', step), acc: valueAt(c, 'acc', step) }, { step, timestamp: base + 1000 + step }));
      if (step % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    children[0]!.logParams({ late: 'yes' });
    children[1]!.setTags({ stage: 'done' });
    await children[0]!.finish('success');
    await children[1]!.finish('success');
    await children[2]!.finish('failed', new RangeError('diverged'));
    const dir = mkdtempSync(join(tmpdir(), 'runtel-bridge-e2e-'));
    const file = join(dir, 'weights.bin');
    writeFileSync(file, Buffer.from('weights'));
    parent.logArtifact(file, { name: 'models/best/weights.bin' });
    await parent.finish('success');
    await emitter.shutdown();
    expect(emitter.processor.deliveryStats()).toMatchObject({ undelivered: 0, pending: 0 });

    // Everything arrives: four runs, each finished.
    const runs = await poll(
      'four finished runs in MLflow',
      async () => {
        const found = new Map<string, MlflowRun>();
        for (const run of [parent, ...children]) {
          const matches = await mlflowRunsFor(client, EXPERIMENT, run.id);
          if (matches.length !== 1 || matches[0]!.info.status === 'RUNNING') return undefined;
          found.set(run.id, matches[0]!);
        }
        return found;
      },
      90_000,
    );
    const parentRun = runs.get(parent.id)!;
    expect(parentRun.info.status).toBe('FINISHED');
    expect(parentRun.info.run_name).toBe('grid');
    expect(paramsOf(parentRun)).toEqual(flattenParams(config));
    expect(tagsOf(parentRun)).toMatchObject({ team: 'ml', 'runtel.run_id': parent.id });
    // The bridge is not the process that trained: its user, script and git commit are not the run's.
    expect(Object.keys(tagsOf(parentRun)).filter((key) => key === 'mlflow.user' || key.startsWith('mlflow.source.'))).toEqual([]);
    const artifact = JSON.parse(tagsOf(parentRun)['runtel.artifact.models/best/weights.bin']!) as Record<string, unknown>;
    expect(artifact).toEqual({ kind: 'file', size: 7, sha256: createHash('sha256').update('weights').digest('hex'), source: file });
    expect(Number(parentRun.info.start_time)).toBeGreaterThanOrEqual(startedAt);
    expect(Number(parentRun.info.start_time)).toBeLessThanOrEqual(Number(parentRun.info.end_time));

    // No duplicate anywhere (4 consumers reorder the collector's batches).
    for (const run of [parent, ...children]) expect(await runsTaggedAnywhere(client, mlflow.url, run.id)).toHaveLength(1);
    for (const [c, child] of children.entries()) {
      const run = runs.get(child.id)!;
      expect(run.info.status).toBe(c === 2 ? 'FAILED' : 'FINISHED');
      expect(tagsOf(run)['mlflow.parentRunId']).toBe(parentRun.info.run_id);
      expect(paramsOf(run)).toEqual({ c: String(c), lr: String(0.01 * (c + 1)), ...(c === 0 ? { late: 'yes' } : {}) });
      if (c === 1) expect(tagsOf(run).stage).toBe('done');
      for (const key of ['loss', 'acc'] as const) {
        // Every step exactly once, exact value and timestamp.
        const history = await poll(`${STEPS} ${key} points of trial-${c}`, async () => {
          const points = await client.getMetricHistory(run.info.run_id, key);
          return points.length >= STEPS ? points : undefined;
        }, 30_000);
        expect(history).toHaveLength(STEPS);
        const bad = history.filter((p) => !Object.is(p.value, valueAt(c, key, p.step)) || p.timestamp !== base + 1000 + p.step);
        expect(bad.slice(0, 5)).toEqual([]);
        expect(new Set(history.map((p) => p.step)).size).toBe(STEPS);
      }
    }
    const nan = (await client.getMetricHistory(runs.get(children[0]!.id)!.info.run_id, 'loss')).filter((p) => Number.isNaN(p.value));
    expect(nan.map((p) => p.step)).toEqual([7, 57, 107, 157, 207, 257]);
    expect(bridge.stats()).toMatchObject({ rejectedLogRecords: 0, artifacts: 1 });
    // What the collector's otlphttp exporter sends by default.
    expect(Object.keys(bridge.stats().accepted)).toEqual(['protobuf+gzip']);
    expect(bridge.failureCounts()).toEqual({});
    expect(collector.logs()).not.toMatch(/Exporting failed\. Dropping data/);

    // MLflow's own Python client reads the same: NaN, and ±Infinity as the store keeps it (±max double).
    const py = await readBackWithPython(mlflow.url, EXPERIMENT);
    const pyTrial = py.find((r) => r.tags['runtel.run_id'] === children[0]!.id)!;
    expect(pyTrial.tags['mlflow.parentRunId']).toBe(parentRun.info.run_id);
    const pyLoss = new Map(pyTrial.metrics.loss!.map(([step, value]) => [step, value]));
    expect([7, 13, 17, 19].map((step) => pyLoss.get(step))).toEqual(['NaN', Number.MAX_VALUE, -Number.MAX_VALUE, 1e300]);
    expect(pyTrial.metrics.loss!.map(([step, value]) => Object.is(pyValue(value), valueAt(0, 'loss', step)))).not.toContain(false);
    expect(py.find((r) => r.tags['runtel.run_id'] === children[2]!.id)!.status).toBe('FAILED');
  }, 240_000);
});

describe('OtelLogger → otelcol-runtel → bridge → MLflow (SQLite store): encodings', () => {

  it("takes the collector's OTLP/JSON too (encoding: json)", async () => {
    const { bridge, client } = pipeline('sqlite');
    const json = await startBridgeCollector(bridge.url, 'json');
    const before = bridge.stats().accepted['json+gzip'] ?? 0;
    try {
      const emitter = otelEmitter(json.otlpUrl, 'bridge-e2e-json');
      const run = emitter.logger.startRun({ name: 'via-json', experiment: EXPERIMENT, config: { batch: 32 } });
      const values = [0.5, Number.NaN, Infinity, -Infinity, 1e300, 2 ** 60, -7];
      values.forEach((value, step) => run.logMetrics({ v: value }, { step, timestamp: 1_700_000_000_000 + step }));
      await run.finish('killed');
      await emitter.shutdown();
      const found = await poll(
        'the JSON run in MLflow',
        async () => {
          const [r] = await mlflowRunsFor(client, EXPERIMENT, run.id);
          if (r?.info.status !== 'KILLED') return undefined;
          const points = await client.getMetricHistory(r.info.run_id, 'v');
          return points.length === values.length ? { r, points } : undefined;
        },
        60_000,
      );
      expect(paramsOf(found.r)).toEqual({ batch: '32' });
      expect(found.points.sort((a, b) => a.step - b.step).map((p) => p.value)).toEqual(values);
      expect(json.collector.logs()).not.toMatch(/Exporting failed/);
      expect(bridge.stats().accepted['json+gzip'] ?? 0).toBeGreaterThan(before);
    } finally {
      await json.collector.stop();
    }
  }, 120_000);
});
