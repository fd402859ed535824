// `runtel sync --to mlflow`: air-gapped runs from the JSONL store uploaded later, idempotently.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonlLogger, listRuns, withRun } from '../../src/index.js';
import { pyValue, readBackWithPython, useMlflowServer } from './helpers.js';

const mlflow = useMlflowServer();
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function runtel(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('runtel sync --to mlflow', () => {
  it('uploads a store of runs; a second sync adds nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-sync-'));
    const logger = new JsonlLogger({ dir });
    const file = join(dir, '..', `artifact-${Date.now()}.txt`);
    writeFileSync(file, 'offline artifact');
    const ids: string[] = [];
    await withRun(logger, { name: 'offline-search', experiment: 'offline', config: { seed: 1 } }, async (parent) => {
      ids.push(parent.id);
      for (let t = 0; t < 3; t++) {
        await withRun(logger, { name: `offline-trial-${t}`, experiment: 'offline', nested: true, config: { t } }, (trial) => {
          ids.push(trial.id);
          for (let step = 0; step < 1500; step++) trial.logMetrics({ loss: 1 / (step + 1), nan: step === 3 ? NaN : step }, { step });
        });
      }
      parent.logArtifact(file, { name: 'notes.txt' });
      parent.setTags({ best: 'offline-trial-2' });
    });
    await logger.shutdown();

    const env = { MLFLOW_TRACKING_URI: mlflow.server.url };
    const first = await runtel(['sync', '--to', 'mlflow', '--dir', dir], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('synced 4 runs (9000 metric points) to mlflow');
    const again = await runtel(['sync', '--to', 'mlflow', '--dir', dir], env);
    expect(again.code).toBe(0);

    const py = await readBackWithPython(mlflow.server.url, 'offline');
    expect(py).toHaveLength(4);
    const parent = py.find((r) => r.tags['runtel.run_id'] === ids[0])!;
    expect(parent.status).toBe('FINISHED');
    expect(parent.tags.best).toBe('offline-trial-2');
    // `runtel sync` is not the process that trained: its user, script and git commit are not the run's.
    expect(Object.keys(parent.tags).filter((key) => key === 'mlflow.user' || key.startsWith('mlflow.source.'))).toEqual([]);
    expect(Buffer.from(parent.artifacts['notes.txt']!, 'hex').toString()).toBe('offline artifact');
    for (const id of ids.slice(1)) {
      const trial = py.find((r) => r.tags['runtel.run_id'] === id)!;
      expect(trial.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(trial.metrics.loss).toHaveLength(1500);
      expect(trial.metrics.nan).toHaveLength(1500);
      expect(pyValue(trial.metrics.nan![3]![1])).toBeNaN();
    }
  });

  it('syncs one run by name with its children, and fails clearly for an unknown run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-sync-one-'));
    const logger = new JsonlLogger({ dir });
    await withRun(logger, { name: 'keep', experiment: 'offline-one' }, async () => {
      await withRun(logger, { name: 'keep-child', experiment: 'offline-one', nested: true }, (r) => r.logMetrics({ a: 1 }));
    });
    await withRun(logger, { name: 'other', experiment: 'offline-one' }, (r) => r.logMetrics({ a: 2 }));
    await logger.shutdown();
    const env = { MLFLOW_TRACKING_URI: mlflow.server.url };
    const res = await runtel(['sync', 'keep', '--to', 'mlflow', '--dir', dir], env);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('synced 2 runs');
    const py = await readBackWithPython(mlflow.server.url, 'offline-one');
    expect(py.map((r) => r.tags['mlflow.runName']).sort()).toEqual(['keep', 'keep-child']);
    const missing = await runtel(['sync', 'nope', '--to', 'mlflow', '--dir', dir], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no run "nope"');
  });

  it('uploads logged models from the store: the staged copy they were logged from is gone after the run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-sync-model-'));
    const logger = new JsonlLogger({ dir });
    let staged = '';
    await withRun(logger, { name: 'with-model', experiment: 'offline-model' }, (run) => {
      run.logMetrics({ loss: 0.5 });
      run.logModel({ weights: [1, 2, 3] }, { name: 'softmax' });
    });
    await logger.shutdown();
    const [stored] = listRuns(dir);
    const artifact = stored!.events.find((e) => e.type === 'artifact')!;
    staged = artifact.type === 'artifact' ? artifact.path : '';
    expect(existsSync(staged)).toBe(false);

    const res = await runtel(['sync', '--to', 'mlflow', '--dir', dir], { MLFLOW_TRACKING_URI: mlflow.server.url });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const [run] = await readBackWithPython(mlflow.server.url, 'offline-model');
    expect(JSON.parse(Buffer.from(run!.artifacts['models/softmax/model.json']!, 'hex').toString())).toEqual({ weights: [1, 2, 3] });
    expect(run!.artifacts['models/softmax/runtel-model.json']).toBeDefined();
  });
});
