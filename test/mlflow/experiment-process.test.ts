// Experiment.run with isolation: 'process' into a real MLflow: each trial process logs its own run
// (createLoggerFromEnv: the JSONL store and MLflow), nested under the experiment's run through the
// parent's childEnv(); one trial throws, one is killed with SIGKILL and finished crashed by the
// experiment. Read back with MLflow's own Python client.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompositeLogger, Experiment, JsonlLogger, MlflowLogger, listRuns } from '../../src/index.js';
import { readBackWithPython, runsByRuntelId, useMlflowServer } from './helpers.js';
import type { PyRun } from './helpers.js';

const TRIAL = fileURLToPath(new URL('../fixtures/trial-module.mjs', import.meta.url));
const mlflow = useMlflowServer();

function named(runs: PyRun[], name: string): PyRun {
  const run = runs.find((r) => r.tags['mlflow.runName'] === name);
  if (run === undefined) throw new Error(`no MLflow run ${name}; there are ${runs.map((r) => r.tags['mlflow.runName']).join(', ')}`);
  return run;
}

describe("Experiment with isolation: 'process', into MLflow", () => {
  it('one trial throws, one is killed with SIGKILL, the others finish: one tree in MLflow, the parent FINISHED and tagged with the best trial', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-proc-mlflow-'));
    const pids = mkdtempSync(join(tmpdir(), 'runtel-proc-mlflow-pids-'));
    const logger = new CompositeLogger([new JsonlLogger({ dir }), new MlflowLogger({ trackingUri: mlflow.server.url })]);
    const killed = (async () => {
      const file = join(pids, '2.pid');
      while (!existsSync(file) || readFileSync(file, 'utf8') === '') await sleep(20);
      while ((listRuns(dir).find((r) => r.record.name === 'proc-mlflow-trial-2')?.record.metrics.loss?.length ?? 0) <= 5) await sleep(20);
      // And in MLflow (its batches go out on their own schedule): the points logged before the kill are kept.
      for (;;) {
        const runs = [...(await runsByRuntelId(mlflow.client, 'proc-mlflow')).values()];
        const hanging = runs.find((r) => r.data.tags?.some((t) => t.key === 'mlflow.runName' && t.value === 'proc-mlflow-trial-2'));
        if (hanging?.data.metrics?.some((m) => m.key === 'loss' && Number(m.step) > 5) === true) break;
        await sleep(50);
      }
      process.kill(Number(readFileSync(file, 'utf8')), 'SIGKILL');
    })();
    const summary = await new Experiment({ logger, name: 'proc-mlflow' }).run(
      { grid: { lr: [0.3, 0.1, 0.2, 0.05] }, concurrency: 2 },
      {
        isolation: 'process',
        module: TRIAL,
        env: {
          RUNTEL_BACKENDS: 'jsonl,mlflow',
          RUNTEL_DIR: dir,
          MLFLOW_TRACKING_URI: mlflow.server.url,
          TRIAL_PID_DIR: pids,
          TRIAL_THROW_LR: '0.1',
          TRIAL_HANG_LR: '0.2',
        },
      },
    );
    await killed;
    await logger.shutdown();
    expect(summary.trials.map((t) => t.status)).toEqual(['success', 'failed', 'crashed', 'success']);

    const runs = await readBackWithPython(mlflow.server.url, 'proc-mlflow');
    expect(runs).toHaveLength(5);
    const parent = named(runs, 'proc-mlflow');
    expect(parent.status).toBe('FINISHED');
    expect(parent.tags['runtel.run_id']).toBe(summary.runId);
    expect(parent.tags['mlflow.parentRunId']).toBeUndefined();
    expect(parent.tags).toMatchObject({ best_trial_id: summary.trials[3]!.runId, best_trial_name: 'proc-mlflow-trial-3' });
    expect(parent.metrics.trials_failed!.at(-1)![1]).toBe(2);

    const expected = [
      { status: 'FINISHED', reason: 'success' },
      { status: 'FAILED', reason: 'failed' },
      { status: 'FAILED', reason: 'crashed' },
      { status: 'FINISHED', reason: 'success' },
    ];
    for (const t of summary.trials) {
      const run = named(runs, t.name);
      expect(run.tags['runtel.run_id']).toBe(t.runId);
      // Created by the trial's own process, found under the experiment's run by its runtel id.
      expect(run.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(run.params).toEqual({ lr: String(t.params.lr) });
      expect({ status: run.status, reason: run.tags['runtel.end_reason'] }).toEqual(expected[t.index]);
      expect(run.metrics.loss?.slice(0, 5).map((p) => p[0]), t.name).toEqual([0, 1, 2, 3, 4]);
      if (t.status === 'success') expect(run.metrics.objective!.at(-1)![1]).toBe(t.value);
    }
  });
});
