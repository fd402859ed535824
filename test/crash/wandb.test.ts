// W&B (the W&B-protocol test server, checked against the real wandb SDK) when a trainer dies hard
// (SIGKILL, or V8 out of heap): runtel completes the run with a non-zero exit code (137), as W&B
// shows a crashed run, when it notices: the bridge after stale-after (OTel trainer), or `runtel
// sync --to wandb` of the store (a trainer that logged to W&B and the JSONL store), which also
// delivers every point the store has.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { readRun } from '../../src/index.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { WandbTestServer } from '../wandb/server.js';
import type { StoredWandbRun } from '../wandb/server.js';
import { API_KEY_40, pointsOf } from '../wandb/helpers.js';
import { die, figure, pollUntil, runtel, startTrainer } from './helpers.js';
import type { Death } from './helpers.js';

const HEARTBEAT = 500;
const STALE_AFTER = 2000;
let server: WandbTestServer;
let bridge: RuntelBridge;

beforeAll(async () => {
  server = await WandbTestServer.start();
  bridge = await createBridge({
    port: 0,
    mlflow: false,
    wandb: { baseUrl: server.url, apiKey: API_KEY_40, mode: 'online', flushIntervalMillis: 100 },
    heartbeatIntervalMillis: HEARTBEAT,
    staleAfterMillis: STALE_AFTER,
    log: () => undefined,
  });
});

afterAll(async () => {
  await bridge?.close();
  await server?.close();
});

const wandbEnv = (): Record<string, string> => ({ WANDB_API_KEY: API_KEY_40, WANDB_BASE_URL: server.url, WANDB_MODE: 'online', RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT) });
const stepsOf = (run: StoredWandbRun): number[] => pointsOf(server.history(run)).filter(([, key]) => key === 'loss').map(([step]) => step);

describe.each<Death>(['sigkill', 'oom'])('W&B, a trainer that dies by %s', (death) => {
  it('through the bridge: the run is completed with exit code 137 within stale-after + 10 s, nobody acting', async () => {
    const experiment = `crash-wandb-bridge-${death}`;
    const trainer = await startTrainer(death === 'oom' ? 'oom' : 'loop', experiment, {
      RUNTEL_BACKENDS: 'otel',
      OTEL_EXPORTER_OTLP_ENDPOINT: bridge.url,
      OTEL_BLRP_SCHEDULE_DELAY: '200',
      OTEL_METRIC_EXPORT_INTERVAL: '600000',
      RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT),
    });
    const live = await pollUntil('the run live in W&B', () => {
      const run = server.getRun(experiment, wandbRunId(trainer.runId));
      return Promise.resolve(run !== undefined && stepsOf(run).length > 0 ? run : undefined);
    }, 30_000);
    const { diedAt, lastStep } = await die(trainer, death);
    const atKill = stepsOf(live);
    expect(live.complete).toBe(false);
    await pollUntil('the run completed', () => Promise.resolve(live.complete ? live : undefined), STALE_AFTER + 10_000, 50);
    const took = Date.now() - diedAt;
    figure(`${death}: kill → W&B completed (exit code ${live.exitcode}) through the bridge, nobody acting: ${took} ms (stale-after ${STALE_AFTER} ms)`);
    expect(took).toBeLessThanOrEqual(STALE_AFTER + 10_000);
    expect(live.exitcode).toBe(137);
    expect(live.state).toBe('failed');
    expect(JSON.parse(JSON.stringify(live.config)).runtel_status).toEqual({ value: 'crashed' });
    const after = stepsOf(live);
    expect(new Set(after).size).toBe(after.length);
    for (const step of atKill) expect(after).toContain(step);
    expect(Math.max(...after)).toBeLessThanOrEqual(lastStep);
  }, 120_000);

  it('W&B direct + JSONL: the run stays running in W&B; sync --to wandb completes it with exit code 137 and every stored point, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), `runtel-crash-wandb-${death}-`));
    const experiment = `crash-wandb-direct-${death}`;
    const trainer = await startTrainer(death === 'oom' ? 'oom' : 'loop', experiment, { ...wandbEnv(), RUNTEL_BACKENDS: 'jsonl,wandb', RUNTEL_DIR: dir });
    const { lastStep } = await die(trainer, death);
    const run = await pollUntil('the run in W&B', () => Promise.resolve(server.getRun(experiment, wandbRunId(trainer.runId))), 10_000);
    // Nobody noticed yet: W&B's own heartbeat timeout would call it crashed some minutes later.
    expect(run.complete).toBe(false);
    const direct = stepsOf(run).length;
    const stored = readRun(join(dir, trainer.runId))!;
    const storedPoints = stored.record.metrics.loss!.length;
    figure(`${death}: W&B direct had ${direct} of ${lastStep + 1} points at the kill; the JSONL store ${storedPoints}`);

    const sync = await runtel(['sync', '--to', 'wandb', '--dir', dir, '--no-progress'], wandbEnv());
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    expect(run.complete).toBe(true);
    expect(run.exitcode).toBe(137);
    const steps = stepsOf(run);
    expect(new Set(steps).size).toBe(steps.length);
    for (let step = 0; step < storedPoints; step++) expect(steps).toContain(step);
    expect(Math.max(...steps)).toBeLessThanOrEqual(lastStep);
    figure(`${death}: after 'runtel sync --to wandb': W&B has ${steps.length} of ${lastStep + 1} points, each once, exit code 137`);
  }, 120_000);
});
