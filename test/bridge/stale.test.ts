// The bridge finishes an open run `crashed`, once, when nothing (record, span or heartbeat)
// arrived for it for staleAfterMillis; heartbeats keep a quiet run open; a finished run is never
// touched; a crashed run that speaks again is taken back (resumed) and its own end replaces crashed.
// Records are posted as OTLP/JSON, as another SDK would send them.

import { afterEach, describe, expect, it } from 'vitest';
import { RuntelBridge, createBridge } from '../../src/bridge/RuntelBridge.js';
import type { BridgeOptions } from '../../src/bridge/RuntelBridge.js';
import type { RunEvent } from '../../src/core/events.js';
import { JSON_TYPE, RecordingBackend, jsonLogs, post } from './helpers.js';
import { useMlflowServer, waitFor } from '../mlflow/helpers.js';
import { mlflowRunsFor, tagsOf } from './pipeline.js';

const mlflow = useMlflowServer();
const bridges: RuntelBridge[] = [];
const HEARTBEAT = 200;
const STALE = 600;

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
});

async function start(options: Partial<BridgeOptions>): Promise<RuntelBridge> {
  const bridge = await createBridge({ port: 0, log: () => undefined, finishSettleMillis: 0, heartbeatIntervalMillis: HEARTBEAT, staleAfterMillis: STALE, ...options });
  bridges.push(bridge);
  return bridge;
}

const s = (v: string) => ({ stringValue: v });
const i = (v: number) => ({ intValue: String(v) });
const nanos = (ms: number) => `${ms}000000`;

function records(runId: string) {
  return {
    start: (experiment: string) => ({ eventName: 'ml.run.start', timeUnixNano: nanos(Date.now()), attributes: { 'ml.run.id': s(runId), 'ml.run.name': s('quiet'), 'ml.experiment.name': s(experiment) } }),
    metric: (step: number) => ({ eventName: 'ml.metric', timeUnixNano: nanos(Date.now()), attributes: { 'ml.run.id': s(runId), 'ml.metric.key': s('loss'), 'ml.metric.value': { doubleValue: 1 / (step + 1) }, 'ml.metric.step': i(step) } }),
    heartbeat: () => ({ eventName: 'ml.run.heartbeat', timeUnixNano: nanos(Date.now()), attributes: { 'ml.run.id': s(runId) } }),
    end: (status: string) => ({ eventName: 'ml.run.end', timeUnixNano: nanos(Date.now()), attributes: { 'ml.run.id': s(runId), 'ml.run.status': s(status) } }),
  };
}

type OtlpRecord = { eventName: string; timeUnixNano: string; attributes: Record<string, unknown> };

async function send(bridge: RuntelBridge, ...recs: OtlpRecord[]): Promise<void> {
  const response = await post(`${bridge.url}/v1/logs`, jsonLogs(recs), JSON_TYPE);
  expect(response.status).toBe(200);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const finishes = (events: RunEvent[], runId: string) => events.filter((e) => e.type === 'run_finished' && e.runId === runId);

describe('stale runs in the bridge', () => {
  it('a run that goes silent is finished crashed once, at the time it was last heard of; heartbeats keep a quiet run open; a finished run is left alone', async () => {
    const backend = new RecordingBackend();
    const bridge = await start({ targets: [backend] });
    const silent = records('1'.repeat(32));
    const quiet = records('2'.repeat(32));
    const done = records('3'.repeat(32));
    const sentAt = Date.now();
    await send(bridge, silent.start('stale'), silent.metric(0), quiet.start('stale'), quiet.metric(0), done.start('stale'), done.end('success'));
    const answeredAt = Date.now();
    // The quiet run heartbeats for 5 stale-afters.
    const until = Date.now() + 5 * STALE;
    while (Date.now() < until) {
      await sleep(HEARTBEAT);
      await send(bridge, quiet.heartbeat());
    }
    const crashed = finishes(backend.events, '1'.repeat(32));
    expect(crashed).toEqual([{ type: 'run_finished', runId: '1'.repeat(32), endTime: expect.any(Number), status: 'crashed', error: { type: 'Crashed', message: expect.stringMatching(/nothing \(record, span or heartbeat\) reached the bridge for 0.6 s/) } }]);
    expect((crashed[0] as { endTime: number }).endTime).toBeGreaterThanOrEqual(sentAt);
    expect((crashed[0] as { endTime: number }).endTime).toBeLessThanOrEqual(answeredAt);
    expect(finishes(backend.events, '2'.repeat(32))).toEqual([]);
    expect(finishes(backend.events, '3'.repeat(32))).toMatchObject([{ status: 'success' }]);
    expect(bridge.stats()).toMatchObject({ crashedRuns: 1, revivedRuns: 0 });
    // Heartbeats carry nothing else: no event came of them.
    expect(backend.events.filter((e) => e.runId === '2'.repeat(32)).map((e) => e.type)).toEqual(['run_started', 'metrics']);
  });

  it('a busy bridge (503 for its queue) does not call the runs whose requests it refuses crashed', async () => {
    const backend = new RecordingBackend();
    const bridge = await start({ targets: [backend], maxQueuedPoints: 10 });
    const run = records('4'.repeat(32));
    await send(bridge, run.start('busy'), run.metric(0));
    backend.queuedPoints = 10;
    const until = Date.now() + 4 * STALE;
    while (Date.now() < until) {
      expect((await post(`${bridge.url}/v1/logs`, jsonLogs([run.metric(1)]), JSON_TYPE)).status).toBe(503);
      await sleep(HEARTBEAT);
    }
    expect(finishes(backend.events, '4'.repeat(32))).toEqual([]);
  });

  it('in MLflow: RUNNING → FAILED with runtel.end_reason=crashed within stale-after; speaking again makes it RUNNING; its own end replaces crashed', async () => {
    const bridge = await start({ mlflow: { trackingUri: mlflow.server.url, flushIntervalMillis: 50 }, wandb: false });
    const runId = '5'.repeat(32);
    const run = records(runId);
    const experiment = 'stale-revived';
    const sentAt = Date.now();
    await send(bridge, run.start(experiment), run.metric(0), run.metric(1));
    const mlflowRun = async (status: string) => {
      const [found] = await mlflowRunsFor(mlflow.client, experiment, runId);
      return found?.info.status === status ? found : undefined;
    };
    const failed = await waitFor('FAILED', () => mlflowRun('FAILED'), 10_000);
    // The bridge heard of it when the request came (it answers once the data is in MLflow).
    const took = Date.now() - sentAt;
    expect(took).toBeGreaterThanOrEqual(STALE);
    expect(took).toBeLessThan(STALE + 3000);
    expect(tagsOf(failed)['runtel.end_reason']).toBe('crashed');

    // It speaks again (it was only cut off): RUNNING, its points arrive, then its own end.
    await send(bridge, run.metric(2));
    const running = await waitFor('RUNNING again', () => mlflowRun('RUNNING'), 10_000);
    expect(bridge.stats().revivedRuns).toBe(1);
    await send(bridge, run.metric(3), run.end('success'));
    const finished = await waitFor('FINISHED', () => mlflowRun('FINISHED'), 10_000);
    expect(finished.info.run_id).toBe(running.info.run_id);
    expect(tagsOf(finished)['runtel.end_reason']).toBe('success');
    expect((await mlflow.client.getMetricHistory(finished.info.run_id, 'loss')).map((p) => p.step).sort()).toEqual([0, 1, 2, 3]);
    // Finished for good: it stays so however long nothing comes.
    await sleep(3 * STALE);
    expect((await mlflowRunsFor(mlflow.client, experiment, runId))[0]!.info.status).toBe('FINISHED');
    expect(bridge.stats()).toMatchObject({ crashedRuns: 1, revivedRuns: 1 });
  });
});

describe('stale-after: bad input', () => {
  it('is refused when shorter than 2 heartbeat intervals, not a number, or not above 0, naming the option', () => {
    const targets = [new RecordingBackend()];
    const build = (options: Partial<BridgeOptions>) => new RuntelBridge({ port: 0, targets, ...options });
    expect(() => build({ heartbeatIntervalMillis: 1000, staleAfterMillis: 900 })).toThrow(/staleAfterMillis \(900 ms\) is shorter than 2 heartbeat intervals \(heartbeatIntervalMillis = 1000 ms\)/);
    expect(() => build({ heartbeatIntervalMillis: 1000, staleAfterMillis: 1500 })).toThrow(/use at least 2000 ms/);
    expect(() => build({ staleAfterMillis: 0 })).toThrow('staleAfterMillis must be a number of milliseconds greater than 0, got 0');
    expect(() => build({ staleAfterMillis: Number.NaN })).toThrow('staleAfterMillis must be a number of milliseconds greater than 0, got null');
    expect(() => build({ heartbeatIntervalMillis: 0 })).toThrow('heartbeatIntervalMillis must be a number of milliseconds greater than 0, got 0');
    expect(() => build({ heartbeatIntervalMillis: '5' as unknown as number })).toThrow('heartbeatIntervalMillis must be a number of milliseconds greater than 0, got "5"');
    expect(build({ heartbeatIntervalMillis: 1000, staleAfterMillis: 2000 }).staleAfterMillis).toBe(2000);
    expect(build({ heartbeatIntervalMillis: 1000 }).staleAfterMillis).toBe(3000);
  });

  it('reads RUNTEL_BRIDGE_STALE_AFTER_MILLIS and RUNTEL_HEARTBEAT_INTERVAL_MILLIS strictly, naming them', () => {
    const targets = [new RecordingBackend()];
    const withEnv = (env: Record<string, string>) => {
      const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
      Object.assign(process.env, env);
      try {
        return new RuntelBridge({ port: 0, targets });
      } finally {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    };
    expect(() => withEnv({ RUNTEL_BRIDGE_STALE_AFTER_MILLIS: 'soon' })).toThrow('RUNTEL_BRIDGE_STALE_AFTER_MILLIS must be a number of milliseconds greater than 0, got "soon"');
    expect(() => withEnv({ RUNTEL_BRIDGE_STALE_AFTER_MILLIS: '1000' })).toThrow(/RUNTEL_BRIDGE_STALE_AFTER_MILLIS \(1000 ms\) is shorter than 2 heartbeat intervals \(RUNTEL_HEARTBEAT_INTERVAL_MILLIS = 30000 ms\)/);
    expect(() => withEnv({ RUNTEL_HEARTBEAT_INTERVAL_MILLIS: '-1' })).toThrow('RUNTEL_HEARTBEAT_INTERVAL_MILLIS must be a number of milliseconds greater than 0, got "-1"');
    expect(withEnv({ RUNTEL_HEARTBEAT_INTERVAL_MILLIS: '100' }).staleAfterMillis).toBe(300);
    expect(withEnv({ RUNTEL_BRIDGE_STALE_AFTER_MILLIS: '120000' }).staleAfterMillis).toBe(120_000);
    expect(withEnv({}).staleAfterMillis).toBe(90_000);
  });
});
