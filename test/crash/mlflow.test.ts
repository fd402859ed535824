// A trainer logging to the JSONL store and straight to a real MLflow dies hard (SIGKILL, or V8
// running out of heap): `runtel ls` shows crashed at once, MLflow keeps it RUNNING until `runtel
// reap --mlflow` (FAILED + runtel.end_reason=crashed, read back with MLflow's Python client), and
// `runtel sync` afterwards leaves every point the store has in MLflow, once. A healthy run that is
// only quiet is not reaped anywhere.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readRun } from '../../src/index.js';
import { liveness } from '../../src/backends/jsonl/liveness.js';
import { readBackWithPython, runsByRuntelId, useMlflowServer } from '../mlflow/helpers.js';
import { die, figure, pollUntil, runtel, startTrainer } from './helpers.js';
import type { Death } from './helpers.js';

const mlflow = useMlflowServer();
const HEARTBEAT = 500;
const STALE_AFTER = 3000;
let foreignRunId = '';

beforeAll(async () => {
  // A run runtel did not make, RUNNING since an hour ago: reap must leave it alone.
  const experimentId = await mlflow.client.getOrCreateExperiment('crash-foreign');
  const run = await mlflow.client.createRun({ experiment_id: experimentId, run_name: 'not-runtel', start_time: Date.now() - 3_600_000, tags: [] });
  foreignRunId = run.run_id;
});


function trainerEnv(dir: string): Record<string, string> {
  return { RUNTEL_BACKENDS: 'jsonl,mlflow', RUNTEL_DIR: dir, MLFLOW_TRACKING_URI: mlflow.server.url, RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT) };
}

const cliEnv = (): Record<string, string> => ({ RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT), MLFLOW_TRACKING_URI: mlflow.server.url });

describe.each<Death>(['sigkill', 'oom'])('MLflow direct + JSONL, a trainer that dies by %s', (death) => {
  it('ls shows crashed at once; reap --mlflow makes the run FAILED/crashed; sync then leaves every stored point in MLflow once', async () => {
    const dir = mkdtempSync(join(tmpdir(), `runtel-crash-${death}-`));
    const experiment = `crash-mlflow-${death}`;
    const trainer = await startTrainer(death === 'oom' ? 'oom' : 'loop', experiment, trainerEnv(dir));
    const { diedAt, lastStep, signal } = await die(trainer, death);
    expect(signal).toBe(death === 'oom' ? 'SIGABRT' : 'SIGKILL');
    if (death === 'oom') expect(trainer.stderr()).toMatch(/heap out of memory/);
    const logged = lastStep + 1;

    // The store: the run has no finish, but ls and show say crashed, without waiting for anything.
    const ls = await pollUntil('ls to show the run crashed', async () => {
      const out = await runtel(['ls', '--dir', dir], cliEnv());
      return out.stdout.includes(trainer.runId.slice(0, 8)) && /crashed/.test(out.stdout) ? out.stdout : undefined;
    }, 10_000);
    figure(`${death}: kill → 'runtel ls' shows crashed: ${Date.now() - diedAt} ms (pid check; includes the CLI's start)`);
    expect(ls).not.toMatch(/running/);
    const show = await runtel(['show', trainer.runId, '--dir', dir, '--no-charts'], cliEnv());
    expect(show.stdout).toMatch(/crashed/);
    expect(show.stdout).toContain(`process ${trainer.pid} on`);
    expect(show.stdout).toMatch(/runtel reap/);

    const stored = readRun(join(dir, trainer.runId))!;
    expect(stored.record.status).toBe('running');
    const storedPoints = stored.record.metrics.loss!.length;
    expect(stored.record.metrics.loss!.map((p) => p.step)).toEqual(Array.from({ length: storedPoints }, (_, i) => i));
    expect(storedPoints).toBeLessThanOrEqual(logged);
    // The loss window: lines are written every 200 ms, so what was lost was logged within the last 200 ms (plus a timer's lateness).
    const times = trainer.stepTimes();
    const window = times[lastStep]! - (storedPoints === 0 ? times[0]! : times[storedPoints - 1]!);
    figure(`${death}: JSONL store lost ${logged - storedPoints} of ${logged} points (the last ${window} ms before death)`);
    if (death === 'sigkill') expect(window).toBeLessThanOrEqual(200 + 150);

    // MLflow: nobody acted yet, so the run is still RUNNING, with a heartbeat tag.
    const before = (await runsByRuntelId(mlflow.client, experiment)).get(trainer.runId)!;
    expect(before.info.status).toBe('RUNNING');
    const beat = Number((before.data.tags ?? []).find((t) => t.key === 'runtel.heartbeat')?.value);
    expect(beat).toBeGreaterThan(Number(before.info.start_time));
    expect(beat).toBeLessThanOrEqual(diedAt);
    const mlflowPoints = (await mlflow.client.getMetricHistory(before.info.run_id, 'loss')).length;
    figure(`${death}: MLflow direct had ${mlflowPoints} of ${logged} points at the kill (lost ${logged - mlflowPoints} until sync); last heartbeat ${diedAt - beat} ms before death`);

    // reap --mlflow: not before stale-after has passed since the heartbeat; then FAILED + crashed. --dry-run changes nothing.
    const early = await runtel(['reap', '--mlflow', '--stale-after', String(STALE_AFTER)], cliEnv());
    expect(early.code).toBe(0);
    if (Date.now() - beat < STALE_AFTER - 500) expect(early.stdout).not.toContain(before.info.run_id.slice(0, 8));
    // Each probe starts the CLI (a second or more on a loaded machine): the bound is generous, the figure above is what it took.
    let lastProbe = '';
    const dry = await pollUntil('reap --dry-run to list the run', async () => {
      const out = await runtel(['reap', '--mlflow', '--stale-after', String(STALE_AFTER), '--dry-run', '-e', experiment], cliEnv());
      lastProbe = `exit ${out.code} at ${Date.now() - diedAt} ms after the kill: ${out.stdout}${out.stderr}`;
      return out.stdout.includes(before.info.run_id.slice(0, 8)) ? out.stdout : undefined;
    }, STALE_AFTER + 30_000, 250).catch((error: unknown) => {
      // What the last probe said, so a timeout under load can be told from a run that is never listed.
      throw new Error(`${String(error)}; last probe: ${lastProbe.slice(0, 2000)}`);
    });
    expect(dry).toMatch(/would finish crashed: MLflow run crash-/);
    expect(dry).toMatch(/dry run: nothing changed/);
    expect((await runsByRuntelId(mlflow.client, experiment)).get(trainer.runId)!.info.status).toBe('RUNNING');
    const reaped = await runtel(['reap', '--mlflow', '--stale-after', String(STALE_AFTER), '--tracking-uri', mlflow.server.url], { RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT) });
    expect(reaped.code).toBe(0);
    expect(reaped.stdout).toMatch(new RegExp(`finished crashed: MLflow run crash-\\w+ \\(${before.info.run_id.slice(0, 8)}`));
    figure(`${death}: kill → MLflow FAILED/crashed by 'runtel reap --mlflow --stale-after ${STALE_AFTER}': ${Date.now() - diedAt} ms (heartbeat ${HEARTBEAT} ms)`);

    const [py] = (await readBackWithPython(mlflow.server.url, experiment)).filter((r) => r.tags['runtel.run_id'] === trainer.runId);
    expect(py!.status).toBe('FAILED');
    expect(py!.tags['runtel.end_reason']).toBe('crashed');
    expect(py!.end_time).toBe(beat);
    // Another reap finds nothing more of this run; the run runtel did not make is untouched.
    expect((await runtel(['reap', '--mlflow', '--stale-after', String(STALE_AFTER), '-e', experiment], cliEnv())).stdout).toMatch(/no crashed runs found/);
    expect((await mlflow.client.getRun(foreignRunId)).info.status).toBe('RUNNING');

    // reap of the store writes the finish the run lacks, once.
    const storeReap = await runtel(['reap', '--dir', dir], cliEnv());
    expect(storeReap.stdout).toMatch(new RegExp(`finished crashed: store run crash-\\w+ \\(${trainer.runId.slice(0, 8)}`));
    const after = readRun(join(dir, trainer.runId))!;
    expect(after.record).toMatchObject({ status: 'crashed', error: { type: 'Crashed', message: expect.stringContaining(`process ${trainer.pid} on`) } });
    expect(after.record.metrics.loss).toHaveLength(storedPoints);
    expect((await runtel(['reap', '--dir', dir], cliEnv())).stdout).toMatch(/no crashed runs found/);

    // Recovery: sync leaves every point the store has, once, and the crashed state.
    const sync = await runtel(['sync', '--to', 'mlflow', '--dir', dir, '--tracking-uri', mlflow.server.url, '--no-progress'], cliEnv());
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    const [synced] = (await readBackWithPython(mlflow.server.url, experiment)).filter((r) => r.tags['runtel.run_id'] === trainer.runId);
    expect(synced!.status).toBe('FAILED');
    expect(synced!.tags['runtel.end_reason']).toBe('crashed');
    // MLflow may have more than the store (points it got before the kill that the store had not written yet), never a point twice.
    for (const key of ['loss', 'acc']) {
      const steps = synced!.metrics[key]!.map((p) => p[0]);
      expect(new Set(steps).size).toBe(steps.length);
      expect(steps.slice(0, storedPoints)).toEqual(Array.from({ length: storedPoints }, (_, i) => i));
      expect(steps.length).toBeGreaterThanOrEqual(Math.max(storedPoints, mlflowPoints));
      expect(steps.length).toBeLessThanOrEqual(logged);
    }
    expect(synced!.metrics.loss!.slice(0, storedPoints).map((p) => p[1])).toEqual(stored.record.metrics.loss!.map((p) => p.value));
    figure(`${death}: after 'runtel sync --to mlflow': MLflow has ${synced!.metrics.loss!.length} of ${logged} points, each once`);
  }, 240_000);
});

describe('a healthy run that is only quiet', () => {
  it('is not reaped by ls, reap or reap --mlflow while it heartbeats; on another host its heartbeat lines keep it running; once killed it is crashed there too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-crash-idle-'));
    const experiment = 'crash-mlflow-idle';
    const trainer = await startTrainer('idle', experiment, trainerEnv(dir));
    try {
      await trainer.waitForStep(19);
      // Six heartbeat intervals of silence, twice the stale-after used below.
      await new Promise((r) => setTimeout(r, 6 * HEARTBEAT));
      const quietStale = String(3 * HEARTBEAT);
      const ls = await runtel(['ls', '--dir', dir], cliEnv());
      expect(ls.stdout).toMatch(/running/);
      expect((await runtel(['reap', '--dir', dir, '--stale-after', quietStale], cliEnv())).stdout).toMatch(/no crashed runs found/);
      expect((await runtel(['reap', '--mlflow', '-e', experiment, '--stale-after', quietStale], cliEnv())).stdout).toMatch(/no crashed runs found/);
      const run = (await runsByRuntelId(mlflow.client, experiment)).get(trainer.runId)!;
      expect(run.info.status).toBe('RUNNING');
      const beat = Number((run.data.tags ?? []).find((t) => t.key === 'runtel.heartbeat')?.value);
      expect(Date.now() - beat).toBeLessThan(2 * HEARTBEAT + 1000);

      // Seen from another host (a shared file system), only the store's heartbeat lines tell.
      const stored = readRun(join(dir, trainer.runId))!;
      expect(stored.lastHeartbeat).toBeGreaterThan(trainer.lastStep().at);
      expect(liveness(stored, { staleAfterMillis: 3 * HEARTBEAT, host: 'another-host' })).toMatchObject({ state: 'running' });
    } finally {
      await trainer.kill();
    }
    const dead = readRun(join(dir, trainer.runId))!;
    expect(liveness(dead, { staleAfterMillis: 3 * HEARTBEAT })).toMatchObject({ state: 'crashed' });
    // Elsewhere it takes the stale-after without heartbeat lines.
    const elsewhere = await pollUntil('the run to count as crashed on another host', () => {
      const l = liveness(readRun(join(dir, trainer.runId))!, { staleAfterMillis: 3 * HEARTBEAT, host: 'another-host' });
      return Promise.resolve(l?.state === 'crashed' ? l : undefined);
    }, 10_000);
    expect(elsewhere.reason).toMatch(/nothing written for \d+ s, not even a heartbeat/);
  }, 120_000);
});
