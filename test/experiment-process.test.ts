// Experiment.run with isolation: 'process': every trial in a real Node process of its own (forked
// with the parent run's childEnv()), killed with real signals; read back from the JSONL store the
// trial processes and the experiment share.
import { describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Experiment } from '../src/experiment/Experiment.js';
import { JsonlLogger } from '../src/backends/jsonl/JsonlLogger.js';
import { InMemoryLogger } from '../src/backends/InMemoryLogger.js';
import { listRuns } from '../src/backends/jsonl/store.js';
import type { StoredRun } from '../src/backends/jsonl/store.js';
import { lastMetricValues } from '../src/core/RunRecord.js';
import { pidAlive } from './services/index.js';

const TRIAL = fileURLToPath(new URL('./fixtures/trial-module.mjs', import.meta.url));
const SWEEP = fileURLToPath(new URL('./fixtures/trial-sweep.mjs', import.meta.url));

/** Resolves with the pid a hanging trial wrote to `file`. */
async function pidFrom(file: string, timeoutMillis = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMillis;
  while (!existsSync(file) || readFileSync(file, 'utf8') === '') {
    if (Date.now() > deadline) throw new Error(`no pid in ${file} after ${timeoutMillis} ms`);
    await sleep(20);
  }
  return Number(readFileSync(file, 'utf8'));
}

async function gone(pid: number, timeoutMillis: number): Promise<number> {
  const started = Date.now();
  while (pidAlive(pid)) {
    if (Date.now() - started > timeoutMillis) throw new Error(`process ${pid} still runs after ${timeoutMillis} ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

function byName(runs: StoredRun[], name: string): StoredRun {
  const found = runs.find((r) => r.record.name === name);
  if (found === undefined) throw new Error(`no run ${name} in the store; it has ${runs.map((r) => r.record.name).join(', ')}`);
  return found;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-proc-exp-'));
  const pids = mkdtempSync(join(tmpdir(), 'runtel-proc-pids-'));
  const env = { RUNTEL_DIR: dir, RUNTEL_BACKENDS: 'jsonl', TRIAL_PID_DIR: pids };
  return { dir, pids, env };
}

describe("Experiment with isolation: 'process'", () => {
  it('one trial throws, one is killed with SIGKILL, the others finish: the parent is tagged with the best trial and finishes success', async () => {
    const { dir, pids, env } = setup();
    const logger = new JsonlLogger({ dir });
    const experiment = new Experiment({ logger, name: 'proc-search' });
    // Trial 2 (lr 0.2) hangs until this SIGKILL; trial 1 (lr 0.1) throws. Both would beat trial 0.
    const killed = (async () => {
      const pid = await pidFrom(join(pids, '2.pid'));
      // Once some of its points are in the store (written every 200 ms): they must survive the kill.
      while ((listRuns(dir).find((r) => r.record.name === 'proc-search-trial-2')?.record.metrics.loss?.length ?? 0) <= 5) await sleep(20);
      process.kill(pid, 'SIGKILL');
      return pid;
    })();
    const summary = await experiment.run(
      { grid: { lr: [0.3, 0.1, 0.2, 0.05] }, concurrency: 2 },
      { isolation: 'process', module: TRIAL, env: { ...env, TRIAL_THROW_LR: '0.1', TRIAL_HANG_LR: '0.2' } },
    );
    const killedPid = await killed;
    await logger.shutdown();

    expect(summary.trials.map((t) => t.status)).toEqual(['success', 'failed', 'crashed', 'success']);
    expect(summary.trials[1]!.error?.message).toBe('diverged at lr=0.1');
    expect(summary.trials[2]!.error?.message).toContain('SIGKILL');
    expect(summary.failed).toBe(2);
    // The best of the trials that finished (minimize): the objective each process returned.
    expect(summary.trials[0]!.value).toBeCloseTo(0.6, 12);
    expect(summary.trials[3]!.value).toBeCloseTo(0.103, 12);
    expect(summary.best).toMatchObject({ index: 3, name: 'proc-search-trial-3', runId: summary.trials[3]!.runId });

    const runs = listRuns(dir);
    expect(runs).toHaveLength(5);
    const parent = byName(runs, 'proc-search').record;
    expect(parent.id).toBe(summary.runId);
    expect(parent.status).toBe('success');
    expect(parent.parentId).toBeUndefined();
    expect(parent.tags).toMatchObject({ best_trial_id: summary.trials[3]!.runId, best_trial_name: 'proc-search-trial-3', best_value: String(summary.best!.value) });
    expect(lastMetricValues(parent)).toMatchObject({ trials_completed: 2, trials_failed: 2, best_objective: summary.best!.value });

    const trialPids = new Set<string>();
    for (const t of summary.trials) {
      const stored = byName(runs, t.name);
      // Started by its own process (its run_started line records it), under the experiment's run.
      expect(stored.record.id).toBe(t.runId);
      expect(stored.record.parentId).toBe(parent.id);
      expect(stored.record.experiment).toBe('proc-search');
      expect(stored.record.params).toEqual({ lr: String(t.params.lr) });
      expect(stored.record.tags.trial_index).toBe(String(t.index));
      expect(stored.record.metrics.loss?.slice(0, 5).map((p) => p.step), t.name).toEqual([0, 1, 2, 3, 4]);
      trialPids.add(stored.record.tags.trial_pid!);
    }
    expect(trialPids.size).toBe(4);
    expect(trialPids.has(String(process.pid))).toBe(false);
    expect(trialPids.has(String(killedPid))).toBe(true);

    const ok = byName(runs, 'proc-search-trial-3').record;
    expect(ok.status).toBe('success');
    expect(lastMetricValues(ok).objective).toBe(summary.trials[3]!.value);
    const threw = byName(runs, 'proc-search-trial-1').record;
    expect(threw.status).toBe('failed');
    expect(threw.error?.message).toBe('diverged at lr=0.1');
    expect(threw.metrics.objective).toBeUndefined();
    // Written into the store by the experiment (the process could not): the SIGKILLed trial is crashed,
    // with the points it had logged before it died.
    const crashed = byName(runs, 'proc-search-trial-2');
    expect(crashed.record.status).toBe('crashed');
    expect(crashed.events.at(-1)).toMatchObject({ type: 'run_finished', status: 'crashed' });
    expect(crashed.record.error?.message).toContain(`pid ${killedPid}`);
    expect(crashed.record.metrics.loss!.length).toBeGreaterThan(5);
  });

  it('a trial stopped with SIGTERM is killed, an uncaught exception fails its trial, process.exit() is a crash, a module without a default export fails', async () => {
    const { dir, pids, env } = setup();
    const logger = new JsonlLogger({ dir });
    const stopped = pidFrom(join(pids, '0.pid')).then((pid) => process.kill(pid, 'SIGTERM'));
    const summary = await new Experiment({ logger, name: 'proc-term' }).run(
      { grid: { lr: [0.2, 0.4, 0.6, 0.8] }, concurrency: 2 },
      { isolation: 'process', module: TRIAL, env: { ...env, TRIAL_HANG_LR: '0.2', TRIAL_UNCAUGHT_LR: '0.6', TRIAL_EXIT_LR: '0.8' } },
    );
    await stopped;
    const noExport = join(pids, 'no-default.mjs');
    writeFileSync(noExport, 'export const trial = () => 1;\n');
    const bad = await new Experiment({ logger, name: 'proc-bad-module' }).run({}, { isolation: 'process', module: noExport, env });
    await logger.shutdown();

    expect(summary.trials.map((t) => t.status)).toEqual(['killed', 'success', 'failed', 'crashed']);
    expect(summary.best?.index).toBe(1);
    expect(summary.trials[2]!.error?.message).toBe('uncaught in a timer at lr=0.6');
    expect(summary.trials[3]!.error?.message).toContain('exited with code 3');
    const runs = listRuns(dir);
    const term = byName(runs, 'proc-term-trial-0').record;
    expect(term.status).toBe('killed');
    expect(term.parentId).toBe(summary.runId);
    // Finished by the trial process's own handler (uncaught), and by the experiment (the exit ran no handler).
    expect(byName(runs, 'proc-term-trial-2').record).toMatchObject({ status: 'failed', error: { message: 'uncaught in a timer at lr=0.6' } });
    expect(byName(runs, 'proc-term-trial-3').record.status).toBe('crashed');
    expect(byName(runs, 'proc-term').record.status).toBe('success');

    expect(bad.trials[0]!.status).toBe('failed');
    expect(bad.trials[0]!.error?.message).toContain('default export');
    expect(byName(runs, 'proc-bad-module-trial-0').record).toMatchObject({ status: 'failed', parentId: bad.runId });
    expect(byName(runs, 'proc-bad-module').record.status).toBe('failed');
  });

  it("a trial process does not outlive the experiment's process: SIGKILL the sweep, the trial finishes its run killed and exits", async () => {
    const { dir, pids, env } = setup();
    const sweep = spawn(process.execPath, [SWEEP, TRIAL], {
      env: { ...process.env, ...env, TRIAL_HANG_LR: '0.2' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    sweep.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const trialPid = await pidFrom(join(pids, '0.pid'));
    sweep.kill('SIGKILL');
    const millis = await gone(trialPid, 10_000);
    const runs = listRuns(dir);
    const trial = byName(runs, 'proc-orphan-trial-0').record;
    expect(trial.status, stderr).toBe('killed');
    expect(trial.error?.message).toContain('went away');
    expect(trial.parentId).toBe(byName(runs, 'proc-orphan').record.id);
    // Well within the flush deadline (5 s): the trial noticed at once.
    expect(millis).toBeLessThan(5000);
  });

  it("stops its trial processes when its run is finished from outside (logger.shutdown()): the trials' runs are killed", async () => {
    const { dir, pids, env } = setup();
    const logger = new JsonlLogger({ dir });
    const search = new Experiment({ logger, name: 'proc-shutdown' }).run(
      { grid: { lr: [0.2, 0.4] } },
      { isolation: 'process', module: TRIAL, env: { ...env, TRIAL_HANG_LR: '0.2' } },
    );
    const trialPid = await pidFrom(join(pids, '0.pid'));
    await logger.shutdown();
    await expect(search).rejects.toThrow(/interrupted: its run was finished killed from outside after 1 of 2 trials had started/);
    expect(pidAlive(trialPid)).toBe(false);
    const runs = listRuns(dir);
    expect(runs.map((r) => [r.record.name, r.record.status]).sort()).toEqual([
      ['proc-shutdown', 'killed'],
      ['proc-shutdown-trial-0', 'killed'],
    ]);
  });

  it("says so when the experiment's logger cannot resume a crashed trial's run (it knows no store the trials write)", async () => {
    const { dir, pids, env } = setup();
    const warnings: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      warnings.push(String(chunk));
      return true;
    });
    try {
      const killed = pidFrom(join(pids, '0.pid')).then((pid) => process.kill(pid, 'SIGKILL'));
      const summary = await new Experiment({ logger: new InMemoryLogger(), name: 'proc-memory' }).run(
        { grid: { lr: [0.2] } },
        { isolation: 'process', module: TRIAL, env: { ...env, TRIAL_HANG_LR: '0.2' } },
      );
      await killed;
      expect(summary.trials[0]).toMatchObject({ status: 'crashed' });
      const warning = warnings.find((w) => w.includes(summary.trials[0]!.runId));
      expect(warning).toMatch(/stays running: the experiment's logger cannot resume it .*does not know it.*runtel reap/);
      // The store the trial wrote still has it running (readers on this host show it crashed).
      expect(listRuns(dir).find((r) => r.record.id === summary.trials[0]!.runId)?.record.status).toBe('running');
    } finally {
      write.mockRestore();
    }
  });

  it('rejects a bad process trial at the call site, naming what is wrong', async () => {
    const { dir } = setup();
    const experiment = new Experiment({ logger: new JsonlLogger({ dir }), name: 'proc-errors' });
    await expect(experiment.run({}, { isolation: 'process', module: join(dir, 'missing.mjs') })).rejects.toThrow(/trial module .*missing\.mjs does not exist/);
    await expect(experiment.run({}, { isolation: 'thread' as 'process', module: TRIAL })).rejects.toThrow(/isolation must be 'process'/);
    await expect(experiment.run({}, { isolation: 'process', module: TRIAL, env: { N: 1 as unknown as string } })).rejects.toThrow(/env\.N must be a string/);
    await expect(experiment.run({}, { isolation: 'process', module: 'https://example.invalid/t.mjs' })).rejects.toThrow(/local file/);
    expect(listRuns(dir)).toHaveLength(0);
  });
});
