// Runs across processes, logging straight to the backends (issue 13, tests 2, 3 and 5): a launching
// Node process whose run spawns trainer processes with its childEnv(); every process logs to one
// shared JSONL store folder, a real MLflow (read back with MLflow's own Python client) and the W&B
// test server. The trainers start their runs with no parent: they nest by the environment.
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listRuns } from '../../src/backends/jsonl/store.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { startMlflow } from '../services/index.js';
import type { MlflowHandle } from '../services/index.js';
import { readBackWithPython } from '../mlflow/helpers.js';
import type { PyRun } from '../mlflow/helpers.js';
import { setupOrFail } from '../otel/real/util.js';
import { WandbTestServer } from '../wandb/server.js';
import { API_KEY_40 } from '../wandb/helpers.js';
import { runCommand } from '../deploy/helpers.js';
import { CLI, cleanEnv, launch, nodeTrainer, runTrainer } from './helpers.js';

let mlflow: MlflowHandle | undefined;
let wandb: WandbTestServer | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'runtel-processes-'));

const ready = setupOrFail(async () => {
  [mlflow, wandb] = await Promise.all([startMlflow(), WandbTestServer.start()]);
}, 300_000);

afterAll(async () => {
  await wandb?.close();
  await mlflow?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** The environment of every process of one test: its own store folder, MLflow, W&B (optional). */
function backendsEnv(store: string, withWandb: boolean): NodeJS.ProcessEnv {
  return cleanEnv({
    RUNTEL_BACKENDS: withWandb ? 'jsonl,mlflow,wandb' : 'jsonl,mlflow',
    RUNTEL_DIR: store,
    MLFLOW_TRACKING_URI: mlflow!.url,
    ...(withWandb ? { WANDB_API_KEY: API_KEY_40, WANDB_BASE_URL: wandb!.url } : {}),
  });
}

function byRuntelId(runs: PyRun[]): Map<string, PyRun> {
  return new Map(runs.map((r) => [r.tags['runtel.run_id']!, r]));
}

describe('trainer processes launched with childEnv() log straight to JSONL, MLflow and W&B', () => {
  it('one tree: JSONL parentId (runtel ls draws it), mlflow.parentRunId in the parent\'s experiment, the parent\'s W&B group', async () => {
    ready();
    const store = join(tmp, 'tree');
    const experiment = `xproc-direct-${process.pid}`;
    const out = await launch('sweep', experiment, [nodeTrainer(), nodeTrainer(), nodeTrainer()], backendsEnv(store, true));
    const parentId = out.parent.id;
    expect(out.childEnv).toMatchObject({ RUNTEL_PARENT_RUN_ID: parentId, RUNTEL_PARENT_RUN_NAME: 'sweep', RUNTEL_EXPERIMENT: experiment, WANDB_RUN_GROUP: wandbRunId(parentId) });
    expect(new Set(out.runs.map((r) => r.id)).size).toBe(3);
    for (const run of out.runs) {
      expect(run).toMatchObject({ parentId, experiment, name: `sweep-${run.id.slice(0, 8)}` });
    }

    // JSONL: the four runs of four processes in one store, the trainers under the parent.
    const stored = new Map(listRuns(store).map((r) => [r.record.id, r.record]));
    expect(stored.size).toBe(4);
    expect(stored.get(parentId)).toMatchObject({ status: 'success', experiment });
    expect(stored.get(parentId)!.parentId).toBeUndefined();
    for (const run of out.runs) expect(stored.get(run.id)).toMatchObject({ parentId, status: 'success', experiment });
    const ls = await runCommand(process.execPath, [CLI, 'ls', '--dir', store], { env: cleanEnv({ NO_COLOR: '1' }) });
    expect(ls.code, ls.stderr).toBe(0);
    const lines = ls.stdout.split('\n').filter((l) => l.includes(experiment));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/│ sweep +│/);
    const drawn = lines.slice(1).map((l) => /│ ([├└])─ (sweep-[0-9a-f]{8}) +│/.exec(l));
    expect(drawn.map((m) => m?.[1])).toEqual(['├', '├', '└']);
    expect(drawn.map((m) => m![2]).sort()).toEqual(out.runs.map((r) => r.name).sort());
    expect(ls.stdout).toMatch(/1 top-level run and 3 child runs/);

    // MLflow, through its own Python client: three children of the parent's MLflow run, in its experiment.
    const runs = byRuntelId(await readBackWithPython(mlflow!.url, experiment));
    expect(runs.size).toBe(4);
    const parent = runs.get(parentId)!;
    expect(parent.status).toBe('FINISHED');
    expect(parent.tags['mlflow.parentRunId']).toBeUndefined();
    for (const run of out.runs) {
      const child = runs.get(run.id)!;
      expect(child.status).toBe('FINISHED');
      expect(child.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(child.tags['mlflow.runName']).toBe(run.name);
      expect(child.tags['runtel.parent_run_id']).toBeUndefined();
      expect(child.metrics.loss!.map((p) => p[0])).toEqual([0, 1, 2]);
    }

    // W&B: the parent heads the group (its own id, job type parent); every trainer is in it.
    const project = wandb!.runs.filter((r) => r.project === experiment);
    expect(project).toHaveLength(4);
    const head = project.find((r) => r.name === wandbRunId(parentId))!;
    expect(head).toMatchObject({ group: wandbRunId(parentId), jobType: 'parent', complete: true });
    for (const run of out.runs) expect(project.find((r) => r.name === wandbRunId(run.id))).toMatchObject({ group: wandbRunId(parentId), jobType: 'child', complete: true });
  });

  it('a torchrun-like launch (RANK/WORLD_SIZE/LOCAL_RANK per process): 4 children with rank, world size, local rank and host tags, named by rank', async () => {
    ready();
    const store = join(tmp, 'ranks');
    const experiment = `xproc-ranks-${process.pid}`;
    const ranks = [0, 1, 2, 3];
    const out = await launch('ddp', experiment, ranks.map((r) => nodeTrainer([], { RANK: String(r), WORLD_SIZE: '4', LOCAL_RANK: String(r % 2) })), backendsEnv(store, false));
    expect(out.runs.map((r) => r.name)).toEqual(['ddp-rank0', 'ddp-rank1', 'ddp-rank2', 'ddp-rank3']);
    const stored = new Map(listRuns(store).map((r) => [r.record.id, r.record]));
    const runs = byRuntelId(await readBackWithPython(mlflow!.url, experiment));
    expect(runs.size).toBe(5);
    const parent = runs.get(out.parent.id)!;
    // The launcher itself has no rank.
    expect(parent.tags['runtel.rank']).toBeUndefined();
    for (const [i, run] of out.runs.entries()) {
      const tags = { 'runtel.rank': String(i), 'runtel.world_size': '4', 'runtel.local_rank': String(i % 2), 'runtel.host': hostname() };
      expect(stored.get(run.id)).toMatchObject({ parentId: out.parent.id, name: `ddp-rank${i}`, tags });
      expect(runs.get(run.id)!.tags).toMatchObject({ ...tags, 'mlflow.parentRunId': parent.run_id, 'mlflow.runName': `ddp-rank${i}` });
    }
  });
});

describe('bad input across processes: warnings, never throws', () => {
  it('a malformed TRACEPARENT is ignored with one warning; the runs still nest by RUNTEL_PARENT_RUN_ID', async () => {
    ready();
    const store = join(tmp, 'bad-traceparent');
    const experiment = `xproc-bad-tp-${process.pid}`;
    const out = await launch('sweep', experiment, [nodeTrainer(['--runs=2'], { TRACEPARENT: '00-garbage-01' })], backendsEnv(store, false));
    const trainer = out.trainers[0]!;
    expect(trainer.stderr.match(/runtel: ignoring TRACEPARENT="00-garbage-01": not a W3C traceparent/g)).toHaveLength(1);
    const children = trainer.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; parentId: string });
    expect(children).toHaveLength(2);
    const runs = byRuntelId(await readBackWithPython(mlflow!.url, experiment));
    for (const child of children) {
      expect(child.parentId).toBe(out.parent.id);
      expect(runs.get(child.id)!.tags['mlflow.parentRunId']).toBe(runs.get(out.parent.id)!.run_id);
    }
  });

  it('a RUNTEL_PARENT_RUN_ID that is not 32 hex: a clear warning (once), the runs are top-level', async () => {
    ready();
    const store = join(tmp, 'bad-id');
    const experiment = `xproc-bad-id-${process.pid}`;
    const { runs, stderr } = await runTrainer(['--runs=2'], { ...backendsEnv(store, false), RUNTEL_PARENT_RUN_ID: 'run-42', RUNTEL_EXPERIMENT: experiment });
    expect(stderr.match(/runtel: ignoring RUNTEL_PARENT_RUN_ID="run-42": a run id is 32 hex characters; the run is top-level/g)).toHaveLength(1);
    expect(runs.map((r) => r.parentId)).toEqual([undefined, undefined]);
    const mlflowRuns = byRuntelId(await readBackWithPython(mlflow!.url, experiment));
    for (const run of runs) {
      expect(mlflowRuns.get(run.id)!.tags['mlflow.parentRunId']).toBeUndefined();
      expect(mlflowRuns.get(run.id)!.tags['runtel.parent_run_id']).toBeUndefined();
    }
    expect(listRuns(store).map((r) => r.record.parentId)).toEqual([undefined, undefined]);
  });

  it('a parent MLflow never learns of: the child is created top-level with runtel.parent_run_id, reported once', async () => {
    ready();
    const store = join(tmp, 'unknown-parent');
    const experiment = `xproc-unknown-${process.pid}`;
    const ghost = 'fe'.repeat(16);
    const started = Date.now();
    const { runs, stderr } = await runTrainer(['--runs=2'], { ...backendsEnv(store, false), RUNTEL_PARENT_RUN_ID: ghost, RUNTEL_EXPERIMENT: experiment });
    // The bounded wait for a parent still being created (3 s), not the flush deadline's worth of retries.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(stderr.split(`parent run ${ghost} of run `).length - 1, stderr).toBe(1);
    expect(stderr).toMatch(/has no MLflow run tagged runtel\.run_id; the run is created top-level with the tag runtel\.parent_run_id/);
    const mlflowRuns = byRuntelId(await readBackWithPython(mlflow!.url, experiment));
    expect(mlflowRuns.size).toBe(2);
    for (const run of runs) {
      const child = mlflowRuns.get(run.id)!;
      expect(child.status).toBe('FINISHED');
      expect(child.tags['mlflow.parentRunId']).toBeUndefined();
      expect(child.tags['runtel.parent_run_id']).toBe(ghost);
      expect(child.metrics.loss).toHaveLength(3);
    }
    // The JSONL store keeps the parent id; `runtel ls` shows such a run as a root.
    expect(listRuns(store).map((r) => r.record.parentId)).toEqual([ghost, ghost]);
  });
});
