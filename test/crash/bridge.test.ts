// A trainer logging through OpenTelemetry (createLoggerFromEnv's otel backend, OTLP/HTTP protobuf)
// → a real Collector → the bridge → a real MLflow dies hard (SIGKILL, or V8 out of heap): with no
// action by anyone, the run becomes FAILED with runtel.end_reason=crashed within stale-after + 10 s,
// and the points delivered before the kill are there. A healthy run that is only quiet (it
// heartbeats) stays RUNNING for several stale-afters.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import type { CollectorHandle } from '../services/index.js';
import { useMlflowServer } from '../mlflow/helpers.js';
import { mlflowRunsFor, startBridgeCollector, tagsOf } from '../bridge/pipeline.js';
import { die, figure, pollUntil, startTrainer } from './helpers.js';
import type { Death, Trainer } from './helpers.js';

const mlflow = useMlflowServer();
const HEARTBEAT = 500;
const STALE_AFTER = 2000;
let bridge: RuntelBridge;
let collector: CollectorHandle;
let otlpUrl = '';

beforeAll(async () => {
  bridge = await createBridge({
    port: 0,
    mlflow: { trackingUri: mlflow.server.url, flushIntervalMillis: 200 },
    wandb: false,
    heartbeatIntervalMillis: HEARTBEAT,
    staleAfterMillis: STALE_AFTER,
    log: () => undefined,
  });
  ({ collector, otlpUrl } = await startBridgeCollector(bridge.url));
}, 300_000);

afterAll(async () => {
  await collector?.stop();
  await bridge?.close();
});

function trainerEnv(): Record<string, string> {
  return {
    RUNTEL_BACKENDS: 'otel',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_BLRP_SCHEDULE_DELAY: '200',
    OTEL_BSP_SCHEDULE_DELAY: '200',
    OTEL_METRIC_EXPORT_INTERVAL: '600000',
    RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT),
  };
}

async function mlflowRun(experiment: string, trainer: Trainer, status?: string): Promise<MlflowRun | undefined> {
  const [run] = await mlflowRunsFor(mlflow.client, experiment, trainer.runId);
  return run !== undefined && (status === undefined || run.info.status === status) ? run : undefined;
}

async function points(run: MlflowRun): Promise<number[]> {
  return (await mlflow.client.getMetricHistory(run.info.run_id, 'loss')).map((p) => p.step);
}

describe.each<Death>(['sigkill', 'oom'])('OTel → Collector → bridge → MLflow, a trainer that dies by %s', (death) => {
  it('the run becomes FAILED/crashed within stale-after + 10 s with no action by anyone; the points delivered before the kill are there', async () => {
    const experiment = `crash-bridge-${death}`;
    const trainer = await startTrainer(death === 'oom' ? 'oom' : 'loop', experiment, trainerEnv());
    // Live: the run is in MLflow with points while it trains.
    const live = await pollUntil('the run live in MLflow', async () => {
      const run = await mlflowRun(experiment, trainer, 'RUNNING');
      return run !== undefined && (await points(run)).length > 0 ? run : undefined;
    }, 60_000);
    const { diedAt, lastStep } = await die(trainer, death);
    const atKill = await points(live);
    const failed = await pollUntil('FAILED in MLflow', () => mlflowRun(experiment, trainer, 'FAILED'), STALE_AFTER + 10_000, 100);
    const took = Date.now() - diedAt;
    figure(`${death}: kill → MLflow FAILED/crashed through the bridge, nobody acting: ${took} ms (stale-after ${STALE_AFTER} ms, heartbeat ${HEARTBEAT} ms)`);
    expect(took).toBeLessThanOrEqual(STALE_AFTER + 10_000);
    expect(tagsOf(failed)['runtel.end_reason']).toBe('crashed');
    expect(Number(failed.info.end_time)).toBeLessThanOrEqual(diedAt + 2000);
    const after = await points(failed);
    expect(new Set(after).size).toBe(after.length);
    for (const step of atKill) expect(after).toContain(step);
    expect(Math.max(...after)).toBeLessThanOrEqual(lastStep);
    figure(`${death}: OTel pipeline: MLflow has ${after.length} of ${lastStep + 1} points logged (lost ${lastStep + 1 - after.length}: the SDK's batch, 200 ms here, 1 s by default, and the Collector's)`);
  }, 180_000);
});

describe('a healthy run that is only quiet, through the bridge', () => {
  it('stays RUNNING for several stale-afters while it heartbeats; once killed it is crashed', async () => {
    const experiment = 'crash-bridge-idle';
    const trainer = await startTrainer('idle', experiment, trainerEnv());
    const crashedBefore = bridge.stats().crashedRuns;
    await trainer.waitForStep(19);
    await pollUntil('the run in MLflow', () => mlflowRun(experiment, trainer, 'RUNNING'), 60_000);
    // Three stale-afters of silence but for its heartbeats.
    await new Promise((r) => setTimeout(r, 3 * STALE_AFTER));
    expect((await mlflowRun(experiment, trainer))!.info.status).toBe('RUNNING');
    expect(bridge.stats().crashedRuns).toBe(crashedBefore);
    const diedAt = await trainer.kill();
    await pollUntil('FAILED in MLflow', () => mlflowRun(experiment, trainer, 'FAILED'), STALE_AFTER + 10_000, 100);
    figure(`idle: kill of a quiet run → MLflow FAILED/crashed through the bridge: ${Date.now() - diedAt} ms`);
    expect(bridge.stats().crashedRuns).toBe(crashedBefore + 1);
  }, 120_000);
});
