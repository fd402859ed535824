// Offline mode and `runtel sync --to wandb`: the JSONL store has the run, a replay uploads it, and a
// second replay sends nothing twice.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLoggerFromEnv } from '../../src/backends/createLoggerFromEnv.js';
import { listRuns } from '../../src/backends/jsonl/store.js';
import { Experiment } from '../../src/experiment/Experiment.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { syncRunsToWandb } from '../../src/wandb/sync.js';
import type { WandbSyncProgress } from '../../src/wandb/sync.js';
import { WandbTestServer } from './server.js';
import type { StoredWandbRun } from './server.js';
import { API_KEY_40, historyOffsetsContiguous, pointsOf, rowsWandbKeeps } from './helpers.js';

let server: WandbTestServer;
let dir: string;
beforeAll(async () => {
  server = await WandbTestServer.start();
  dir = mkdtempSync(join(tmpdir(), 'runtel-wandb-sync-'));
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const syncOptions = () => ({ baseUrl: server.url, apiKey: API_KEY_40, retryMinDelayMillis: 5, retryMaxDelayMillis: 20 });

function snapshot(run: StoredWandbRun): unknown {
  return { lines: [...run.historyLines], summary: run.summaryLine, config: JSON.stringify(run.config), tags: run.tags, group: run.group, jobType: run.jobType, exitcode: run.exitcode, files: [...run.files.keys()].sort() };
}

describe('offline mode and sync', () => {
  it('offline keeps runs in the JSONL store only; sync uploads them; a second sync changes nothing', async () => {
    const store = join(dir, 'store');
    vi.stubEnv('RUNTEL_DIR', store);
    vi.stubEnv('RUNTEL_BACKENDS', 'jsonl,wandb');
    vi.stubEnv('WANDB_MODE', 'offline');
    vi.stubEnv('WANDB_API_KEY', API_KEY_40);
    vi.stubEnv('WANDB_BASE_URL', server.url);
    const artifact = join(dir, 'notes.txt');
    writeFileSync(artifact, 'offline notes');

    const logger = createLoggerFromEnv({ flushTimeoutMillis: 20_000 });
    const experiment = new Experiment({ logger, name: 'wandb-sync', config: { dataset: 'iris' } });
    const summary = await experiment.run({ grid: { lr: [0.1, 0.01] } }, (params, run) => {
      for (let step = 0; step < 5; step++) run.logMetrics({ loss: params.lr * (5 - step) }, { step });
      run.logMetrics({ val: params.lr }, { step: 2 }); // late
      run.logMetrics({ weird: NaN }, { step: 4 });
      run.logArtifact(artifact);
      return params.lr;
    });
    await logger.shutdown();
    expect(server.requests).toHaveLength(0);

    const runs = listRuns(store);
    expect(runs).toHaveLength(3);
    const total = runs.reduce((n, r) => n + r.events.reduce((m, e) => m + (e.type === 'metrics' ? Object.keys(e.values).length : 0), 0), 0);
    expect(total).toBeGreaterThan(16);
    const progress: WandbSyncProgress[] = [];
    const first = await syncRunsToWandb(runs, syncOptions(), (p) => progress.push(p));
    expect(first.failures).toEqual([]);
    expect(first.stats).toMatchObject({ sentPoints: total, skippedPoints: 0, undeliveredPoints: 0, queuedPoints: 0 });
    expect(progress[progress.length - 1]).toEqual({ totalPoints: total, sentPoints: total, skippedPoints: 0 });
    expect(first.runs.map((r) => r.wandbRunId).sort()).toEqual(runs.map((r) => wandbRunId(r.record.id)).sort());

    const rootId = wandbRunId(summary.runId);
    const root = server.getRun('wandb-sync', rootId)!;
    expect(root).toMatchObject({ group: rootId, jobType: 'parent', exitcode: 0 });
    expect(root.config.dataset).toEqual({ value: 'iris' });
    for (const trial of summary.trials) {
      const stored = server.getRun('wandb-sync', wandbRunId(trial.runId))!;
      expect(stored).toMatchObject({ group: rootId, jobType: 'trial', exitcode: 0, complete: true });
      const rows = server.history(stored);
      expect(rowsWandbKeeps(rows)).toEqual(rows);
      const lr = trial.params.lr;
      expect(pointsOf(rows).map(([s, k, v]) => [s, k, Number.isNaN(v) ? 'NaN' : v])).toEqual([
        [0, 'loss', lr * 5],
        [1, 'loss', lr * 4],
        [2, 'loss', lr * 3],
        [2, 'val', lr],
        [3, 'loss', lr * 2],
        [4, 'loss', lr * 1],
        [4, 'weird', 'NaN'],
        [5, 'objective', lr],
      ]);
      expect(stored.files.get('notes.txt')?.toString()).toBe('offline notes');
      expect(stored.summary).toMatchObject({ loss: lr, val: lr, objective: lr });
    }

    const before = new Map(server.runs.filter((r) => r.project === 'wandb-sync').map((r) => [r.name, snapshot(r)]));
    const requestsBefore = server.requests.length;
    const second = await syncRunsToWandb(listRuns(store), syncOptions());
    expect(second.failures).toEqual([]);
    expect(second.stats).toMatchObject({ sentPoints: 0, skippedPoints: total, historyLines: 0 });
    for (const run of server.runs.filter((r) => r.project === 'wandb-sync')) expect(snapshot(run)).toEqual(before.get(run.name));
    const resent = server.requests.slice(requestsBefore).filter((r) => r.path.endsWith('/file_stream') && r.text.includes('wandb-history.jsonl'));
    expect(resent).toEqual([]);
  });

  it('a sync cut short by a permanent error is completed by the next sync, without gaps or duplicates', async () => {
    const store = join(dir, 'store2');
    vi.stubEnv('RUNTEL_DIR', store);
    vi.stubEnv('RUNTEL_BACKENDS', 'jsonl');
    const logger = createLoggerFromEnv({ flushTimeoutMillis: 20_000 });
    const run = logger.startRun({ name: 'long', experiment: 'wandb-sync-partial' });
    for (let step = 0; step < 200; step++) run.logMetrics({ loss: step, acc: step / 200 }, { step });
    run.logMetrics({ late: 1 }, { step: 10 });
    await run.finish('failed', new Error('diverged'));
    await logger.shutdown();

    const name = wandbRunId(run.id);
    server.failNext(1, { status: 404, match: new RegExp(`${name}/file_stream`), skip: 2 });
    const first = await syncRunsToWandb(listRuns(store), { ...syncOptions(), maxRequestBytes: 4096 });
    expect(first.failures.map((f) => f.operation)).toEqual(['file_stream']);
    const partial = server.getRun('wandb-sync-partial', name)!;
    expect(partial.historyLines.length).toBeGreaterThan(0);
    expect(partial.historyLines.length).toBeLessThan(201);
    expect(partial.complete).toBe(false);

    const second = await syncRunsToWandb(listRuns(store), { ...syncOptions(), maxRequestBytes: 4096 });
    expect(second.failures).toEqual([]);
    expect(second.stats.skippedPoints + second.stats.sentPoints).toBe(401);
    expect(second.stats.skippedPoints).toBeGreaterThan(0);
    const stored = server.getRun('wandb-sync-partial', name)!;
    expect(stored).toMatchObject({ complete: true, exitcode: 1 });
    expect(stored.historyLines).toHaveLength(201);
    expect(historyOffsetsContiguous(server, stored)).toBe(true);
    const rows = server.history(stored);
    expect(rowsWandbKeeps(rows)).toEqual(rows);
    expect(pointsOf(rows)).toHaveLength(401);
    expect(rows[200]).toMatchObject({ _step: 200, 'runtel/step': 10, late: 1 });
  });
});
