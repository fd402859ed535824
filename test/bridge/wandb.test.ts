// W&B through the bridge: OtelLogger → OTLP/HTTP protobuf → a real collector (otlphttp, protobuf +
// gzip) → one bridge with two targets → the W&B-protocol test server (test/wandb/server.ts, itself
// checked against the real wandb SDK) and a real MLflow. W&B gets the runs live, then config, every
// step once, summary, group and exit codes; MLflow gets the same runs from the same stream. A batch
// sent twice (as a collector retrying a timed-out request does) adds no history row.

import { afterAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { startMlflow } from '../services/index.js';
import type { CollectorHandle, MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { WandbTestServer } from '../wandb/server.js';
import { API_KEY_40, historyOffsetsContiguous, pointsOf, rowsWandbKeeps } from '../wandb/helpers.js';
import { JSON_TYPE, T0, jsonLogs, post } from './helpers.js';
import { mlflowRunsFor, otelEmitter, startBridgeCollector } from './pipeline.js';

const EXPERIMENT = 'bridge-wandb';
const STEPS = 200;

let wandb: WandbTestServer | undefined;
let mlflow: MlflowHandle | undefined;
let client: MlflowClient;
let bridge: RuntelBridge | undefined;
let collector: CollectorHandle | undefined;
let otlpUrl = '';

const ready = setupOrFail(async () => {
  [wandb, mlflow] = await Promise.all([WandbTestServer.start(), startMlflow()]);
  client = new MlflowClient({ trackingUri: mlflow.url, retryTimeoutMillis: 10_000 });
  bridge = await createBridge({
    port: 0,
    mlflow: { trackingUri: mlflow.url, flushIntervalMillis: 200 },
    wandb: { baseUrl: wandb.url, apiKey: API_KEY_40, mode: 'online', flushIntervalMillis: 100 },
    // More slack than the 2 s default: on a loaded test machine the two pipelines drift further apart.
    finishSettleMillis: 5_000,
    log: () => undefined,
  });
  ({ collector, otlpUrl } = await startBridgeCollector(bridge.url));
}, 300_000);

afterAll(async () => {
  await collector?.stop();
  await bridge?.close();
  await client?.close();
  await Promise.all([mlflow?.stop(), wandb?.close()]);
});

/** OTLP/JSON log records of run `runId`, as another SDK would post them (times in ms after T0). */
function records(runId: string) {
  const id = { 'ml.run.id': { stringValue: runId } };
  const at = (ms: number): string => `${T0 + ms}000000`;
  return {
    start: (name: string) => ({ eventName: 'ml.run.start', timeUnixNano: at(0), attributes: { ...id, 'ml.run.name': { stringValue: name }, 'ml.experiment.name': { stringValue: EXPERIMENT } } }),
    metric: (step: number, value: number) => ({
      eventName: 'ml.metric',
      timeUnixNano: at(step + 1),
      attributes: { ...id, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: String(step) }, 'ml.metric.value': { doubleValue: value } },
    }),
    end: () => ({ eventName: 'ml.run.end', timeUnixNano: at(100_000), attributes: { ...id, 'ml.run.status': { stringValue: 'success' } } }),
  };
}

const loss = (c: number, step: number): number => (step === 50 ? Number.NaN : 1 / (step + 1 + c));

describe('OtelLogger → otelcol-runtel → bridge → W&B (and MLflow from the same stream)', () => {
  it('W&B has the run live, then config, every step once, summary, group and exit codes', async () => {
    ready();
    const emitter = otelEmitter(otlpUrl, 'bridge-wandb');
    const parent = emitter.logger.startRun({ name: 'search', experiment: EXPERIMENT, config: { lr: 0.01, net: { depth: 3 }, augment: true }, tags: { team: 'ml' } });
    parent.logMetrics({ best: 0.1 }, { step: 0 });
    parent.logMetrics({ best: 0.5 }, { step: 1 });

    // Live: the W&B run is running and has history while the parent still trains. (Like wandb's own
    // client, a row is written once a larger step starts: step 1 closes step 0's row.)
    await poll(
      'the parent in W&B with history, while it runs',
      () => {
        const run = wandb!.getRun(EXPERIMENT, wandbRunId(parent.id));
        return Promise.resolve(run !== undefined && !run.complete && wandb!.history(run).length > 0 ? run : undefined);
      },
      60_000,
    );
    expect(parent.status).toBe('running');

    const children = [0, 1].map((c) => emitter.logger.startRun({ name: `trial-${c}`, experiment: EXPERIMENT, parent, config: { c } }));
    for (let step = 0; step < STEPS; step++) {
      children.forEach((child, c) => child.logMetrics({ loss: loss(c, step), acc: step / STEPS }, { step }));
      if (step % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    await children[0]!.finish('success');
    await children[1]!.finish('failed', new Error('diverged'));
    parent.logMetrics({ best: 0.9 }, { step: 2 });
    await parent.finish('success');
    await emitter.shutdown();
    expect(emitter.processor.deliveryStats()).toMatchObject({ undelivered: 0, pending: 0 });

    const ids = [parent, ...children].map((r) => wandbRunId(r.id));
    await poll(
      'three complete W&B runs with every point',
      () =>
        Promise.resolve(
          ids.every((id, i) => {
            const run = wandb!.getRun(EXPERIMENT, id);
            return run?.complete === true && pointsOf(wandb!.history(run)).length === (i === 0 ? 3 : 2 * STEPS);
          })
            ? true
            : undefined,
        ),
      60_000,
    );
    // Completed once each: the bridge held each run's end (its span, on the traces pipeline, often
    // arrives before the last metric records) until those records were in.
    for (const id of ids) {
      const completions = wandb!.fileStreams(id).filter((r) => r.status === 200 && (r.body as { complete?: boolean }).complete === true);
      expect(completions, id).toHaveLength(1);
    }
    const stored = wandb!.getRun(EXPERIMENT, ids[0]!)!;
    expect(stored).toMatchObject({ displayName: 'search', exitcode: 0, jobType: 'parent', group: ids[0] });
    expect(stored.config).toMatchObject({ lr: { value: 0.01 }, net: { value: { depth: 3 } }, augment: { value: true }, runtel_run_id: { value: parent.id } });
    expect(stored.tags).toEqual(['team=ml']);
    expect(pointsOf(wandb!.history(stored))).toEqual([
      [0, 'best', 0.1],
      [1, 'best', 0.5],
      [2, 'best', 0.9],
    ]);
    expect(stored.summary).toMatchObject({ best: 0.9 });

    for (const [c, child] of children.entries()) {
      const run = wandb!.getRun(EXPERIMENT, ids[c + 1]!)!;
      expect(run).toMatchObject({ displayName: `trial-${c}`, exitcode: c === 1 ? 1 : 0, group: ids[0] });
      expect(run.config).toMatchObject({ c: { value: c }, runtel_run_id: { value: child.id } });
      const rows = wandb!.history(run);
      // Every step exactly once, in order, nothing W&B would drop, file_stream offsets without gaps.
      expect(rowsWandbKeeps(rows)).toEqual(rows);
      expect(historyOffsetsContiguous(wandb!, run)).toBe(true);
      const points = pointsOf(rows);
      const want = Array.from({ length: STEPS }, (_, step) => [
        [step, 'acc', step / STEPS],
        [step, 'loss', loss(c, step)],
      ]).flat();
      expect(points.map(([s, k, v]) => [s, k, Number.isNaN(v) ? 'NaN' : v])).toEqual(want.map(([s, k, v]) => [s, k, Number.isNaN(v) ? 'NaN' : v]));
      expect(run.summary).toMatchObject({ loss: loss(c, STEPS - 1), acc: (STEPS - 1) / STEPS });
    }

    // The same stream made the MLflow runs.
    for (const [i, run] of [parent, ...children].entries()) {
      const found = await poll(`MLflow run ${i}`, async () => {
        const [r] = await mlflowRunsFor(client, EXPERIMENT, run.id);
        return r !== undefined && r.info.status !== 'RUNNING' ? r : undefined;
      }, 60_000);
      expect(found.info.status).toBe(i === 2 ? 'FAILED' : 'FINISHED');
    }
    expect(bridge!.failureCounts()).toEqual({});
  }, 240_000);

  it('a batch sent twice adds no W&B history row (the translator remembers the points it forwarded)', async () => {
    ready();
    const runId = 'b'.repeat(32);
    const r = records(runId);
    const first = jsonLogs([r.start('resent'), r.metric(0, 0.5), r.metric(1, 0.25)]);
    const second = jsonLogs([r.metric(2, 0.125), r.end()]);
    for (const body of [first, first, second, first, second]) {
      const response = await post(`${bridge!.url}/v1/logs`, body, JSON_TYPE);
      expect(response.status, response.body.toString()).toBe(200);
    }
    const run = await poll(
      'the resent run complete in W&B',
      () => {
        const r = wandb!.getRun(EXPERIMENT, wandbRunId(runId));
        return Promise.resolve(r?.complete === true ? r : undefined);
      },
      30_000,
    );
    expect(pointsOf(wandb!.history(run))).toEqual([
      [0, 'loss', 0.5],
      [1, 'loss', 0.25],
      [2, 'loss', 0.125],
    ]);
    expect(run.exitcode).toBe(0);
  }, 60_000);

  it('a restarted bridge (empty memory) continues the W&B run after the lines W&B has, finding the run through MLflow by its tag', async () => {
    ready();
    const runId = 'c'.repeat(32);
    const r = records(runId);
    const metrics = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => r.metric(from + i, 1 / (from + i + 1)));
    const targets = {
      port: 0,
      mlflow: { trackingUri: mlflow!.url, flushIntervalMillis: 100 },
      wandb: { baseUrl: wandb!.url, apiKey: API_KEY_40, mode: 'online' as const, flushIntervalMillis: 100 },
      log: () => undefined,
    };
    const before = await createBridge(targets);
    expect((await post(`${before.url}/v1/logs`, jsonLogs([r.start('restarted'), ...metrics(0, 10)]), JSON_TYPE)).status).toBe(200);
    await before.close(); // a graceful stop: what it took is delivered; the run stays open

    const after = await createBridge(targets);
    try {
      // No start record: the new bridge finds the run's identity in MLflow, and W&B's line count.
      const response = await post(`${after.url}/v1/logs`, jsonLogs([...metrics(10, 20), r.end()]), JSON_TYPE);
      expect(response.status, response.body.toString()).toBe(200);
      await after.flush();
      const run = await poll(
        'the restarted run complete in W&B',
        () => {
          const r = wandb!.getRun(EXPERIMENT, wandbRunId(runId));
          return Promise.resolve(r?.complete === true ? r : undefined);
        },
        30_000,
      );
      const rows = wandb!.history(run);
      expect(pointsOf(rows)).toEqual(Array.from({ length: 20 }, (_, step) => [step, 'loss', 1 / (step + 1)]));
      expect(rowsWandbKeeps(rows)).toEqual(rows);
      expect(historyOffsetsContiguous(wandb!, run)).toBe(true);
      expect(run).toMatchObject({ displayName: 'restarted', exitcode: 0 });
      expect(after.stats().heldForIdentity).toBe(0);
      expect(after.failureCounts()).toEqual({});
    } finally {
      await after.close();
    }
  }, 60_000);
});
