// What the MLflow benchmarks share: a fresh server per case (SQLite file or PostgreSQL cluster on
// tmpfs), and the server's ceiling, raw log-batch requests of 1000 metrics with pre-built bodies.

import { existsSync } from 'node:fs';
import { MlflowClient } from '../src/index.js';
import { startMlflow } from '../test/services/index.js';
import type { MlflowHandle, MlflowStore } from '../test/services/index.js';

// MLflow's SQLite store fsyncs every commit: on a VM's disk that jitter swamps the comparison, so the
// servers keep their stores (the SQLite file, the PostgreSQL cluster) on tmpfs when there is one
// (TMPDIR overrides).
if (process.env.TMPDIR === undefined && existsSync('/dev/shm')) process.env.TMPDIR = '/dev/shm';

/** How each benchmark's MLflow server runs: its store, and its worker processes. */
export interface ServerSetup {
  store: MlflowStore;
  workers: number;
}

/** The stores measured, with the server's workers: env BENCH_STORES (default sqlite,postgres), BENCH_WORKERS (default 1 for SQLite, 2 for PostgreSQL). */
export function serverSetups(): ServerSetup[] {
  const stores = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',').map((s) => s.trim()) as MlflowStore[];
  for (const store of stores) if (store !== 'sqlite' && store !== 'postgres') throw new Error(`BENCH_STORES: unknown store ${JSON.stringify(store)} (sqlite, postgres)`);
  const workers = process.env.BENCH_WORKERS === undefined ? undefined : Number(process.env.BENCH_WORKERS);
  // SQLite takes one write at a time whatever the workers; PostgreSQL gets one worker per core here.
  return stores.map((store) => ({ store, workers: workers ?? (store === 'sqlite' ? 1 : 2) }));
}

export function describeSetup(setup: ServerSetup): string {
  return `${setup.store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${setup.workers} worker${setup.workers === 1 ? '' : 's'}`;
}

/** Runs `work` against a fresh MLflow server, stopped afterwards. */
export async function withServer<T>(setup: ServerSetup, work: (server: MlflowHandle, client: MlflowClient) => Promise<T>): Promise<T> {
  const server = await startMlflow({ store: setup.store, workers: setup.workers });
  const client = new MlflowClient({ trackingUri: server.url });
  try {
    return await work(server, client);
  } finally {
    await client.close();
    await server.stop();
  }
}

/**
 * What every case does before its timing starts, (B) and the bridge's (A) alike: an experiment and a
 * run of its own, so neither is timed on a server that has not answered yet (its first requests are
 * slower, and (B) needs the run anyway).
 */
export async function warmUp(client: MlflowClient, runName: string): Promise<{ run_id: string }> {
  const experimentId = await client.getOrCreateExperiment('bench-ceiling');
  return client.createRun({ experiment_id: experimentId, run_name: runName, start_time: Date.now(), tags: [] });
}

/** Log-batch bodies of 1000 metrics for `run_id`: `keys` × `steps` points, step by step. */
function logBatchBodies(runId: string, keys: number, steps: number): string[] {
  return metricsBodies(keys, steps).map((metrics) => withRunId(runId, metrics));
}

/** The `"metrics":[…]}` tail of each log-batch body, built before a run id is known. */
function metricsBodies(keys: number, steps: number): string[] {
  const bodies: string[] = [];
  const base = Date.now();
  let batch: unknown[] = [];
  for (let step = 0; step < steps; step++) {
    for (let k = 0; k < keys; k++) {
      batch.push({ key: `metric_${k}`, value: step * 0.001 + k, timestamp: base + step, step });
      if (batch.length === 1000) {
        bodies.push(`"metrics":${JSON.stringify(batch)}}`);
        batch = [];
      }
    }
  }
  if (batch.length > 0) bodies.push(`"metrics":${JSON.stringify(batch)}}`);
  return bodies;
}

function withRunId(runId: string, metrics: string): string {
  return `{"run_id":${JSON.stringify(runId)},${metrics}`;
}

/**
 * Posts every body, `concurrency` at a time, through runtel's own MLflow HTTP client (one attempt each, no
 * retries): it spreads its connections over the server's workers (src/mlflow/MlflowClient.ts), and a
 * ceiling measured on connections that landed on one worker would be no ceiling.
 */
async function postAll(client: MlflowClient, bodies: string[], concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const res = await client.http.send('log-batch', `${client.trackingUri}/api/2.0/mlflow/runs/log-batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        if (res.statusCode !== 200) throw new Error(`log-batch answered ${res.statusCode}: ${await res.body.text()}`);
        await res.body.dump();
      }
    }),
  );
}

/**
 * Points/s of raw log-batch requests (keys × steps points, 1000 a request) at `concurrency`; only HTTP
 * and the server's work are timed. `primeSteps`: before the timing, a run of its own with keys ×
 * primeSteps points goes in the same way, as a bridge's earlier run does (bridge-ingest's primed case).
 */
export async function ceilingCase(setup: ServerSetup, keys: number, steps: number, concurrency: number, primeSteps = 0): Promise<number> {
  return (await ceilingRunCase(setup, keys, steps, concurrency, primeSteps)).logBatchPointsPerSecond;
}

/**
 * ceilingCase for a whole run, as a raw client delivers one: its experiment (new on the server) and run
 * are created and the run is ended inside the timing, as the bridge's are in bench/bridge-ingest's (A).
 * `pointsPerSecond` over all of it; `logBatchPointsPerSecond` from the first log-batch sent to the last
 * answered (what ceilingCase times).
 */
export function ceilingRunCase(setup: ServerSetup, keys: number, steps: number, concurrency: number, primeSteps = 0): Promise<{ pointsPerSecond: number; logBatchPointsPerSecond: number }> {
  return withServer(setup, async (_server, client) => {
    await warmUp(client, `ceiling-${concurrency}`);
    if (primeSteps > 0) {
      const prime = await warmUp(client, `ceiling-${concurrency}-prime`);
      await postAll(client, logBatchBodies(prime.run_id, keys, primeSteps), concurrency);
    }
    const metrics = metricsBodies(keys, steps);
    const start = performance.now();
    const experimentId = await client.getOrCreateExperiment('bench-ceiling-run');
    const { run_id } = await client.createRun({ experiment_id: experimentId, run_name: 'ceiling-run', start_time: Date.now(), tags: [] });
    const bodies = metrics.map((m) => withRunId(run_id, m));
    const batchesStart = performance.now();
    await postAll(client, bodies, concurrency);
    const batchesEnd = performance.now();
    await client.updateRun({ run_id, status: 'FINISHED', end_time: Date.now() });
    const points = keys * steps;
    return { pointsPerSecond: points / ((performance.now() - start) / 1000), logBatchPointsPerSecond: points / ((batchesEnd - batchesStart) / 1000) };
  });
}
