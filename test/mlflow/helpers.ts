// Shared by the MLflow tests: a real server, reading runs back through REST and MLflow's Python client.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { MlflowClient } from '../../src/index.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import { decodeStoredValue } from '../../src/mlflow/MlflowClient.js';
import { MLFLOW_STORES, mlflowPython, startMlflow } from '../services/index.js';
import type { MlflowHandle, MlflowStore } from '../services/index.js';

export { MLFLOW_STORES };
export type { MlflowStore };

export interface MlflowContext {
  server: MlflowHandle;
  client: MlflowClient;
}

/** A real MLflow server (on `store`, default SQLite) and a client for the tests of one file: started before them, stopped after. */
export function useMlflowServer(store: MlflowStore = 'sqlite'): MlflowContext {
  return startedBeforeAll([store])[0]!;
}

/**
 * One MLflow server on each store (SQLite, PostgreSQL), started side by side before the file's
 * tests and stopped after. For the assertions that depend on the store (how values are kept, SQL
 * searches, concurrent writes): `describe.each(MLFLOW_STORES)` over `servers[store]`.
 */
export function useMlflowServers(): Record<MlflowStore, MlflowContext> {
  const contexts = startedBeforeAll(MLFLOW_STORES);
  return Object.fromEntries(MLFLOW_STORES.map((store, i) => [store, contexts[i]!])) as Record<MlflowStore, MlflowContext>;
}

function startedBeforeAll(stores: readonly MlflowStore[]): MlflowContext[] {
  const contexts = stores.map(() => ({}) as MlflowContext);
  beforeAll(async () => {
    await Promise.all(
      stores.map(async (store, i) => {
        const server = await startMlflow({ store });
        Object.assign(contexts[i]!, { server, client: new MlflowClient({ trackingUri: server.url }) });
      }),
    );
  });
  afterAll(async () => {
    await Promise.all(
      contexts.map(async (ctx) => {
        await ctx.client?.close();
        await ctx.server?.stop();
      }),
    );
  });
  return contexts;
}

export interface PyRun {
  run_id: string;
  status: string;
  start_time: number;
  end_time: number | null;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** [step, value, timestamp] sorted by step then timestamp; NaN/±Infinity as strings. */
  metrics: Record<string, Array<[number, number | string, number]>>;
  /** relative path → hex bytes */
  artifacts: Record<string, string>;
}

const script = fileURLToPath(new URL('./readback.py', import.meta.url));

/** Every run of `experiment`, as MLflow's Python client returns it. */
export function readBackWithPython(trackingUri: string, experiment: string): Promise<PyRun[]> {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-mlflow-dl-'));
  return new Promise((resolve, reject) => {
    execFile(mlflowPython(), [script, trackingUri, experiment, dir], { maxBuffer: 256 << 20, env: { ...process.env, MLFLOW_TRACKING_URI: trackingUri } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`readback.py failed: ${stderr.slice(-2000)}`));
      else resolve(JSON.parse(stdout) as PyRun[]);
    });
  });
}

/** Runs of an experiment through the REST API, keyed by their runtel.run_id tag. */
export async function runsByRuntelId(client: MlflowClient, experiment: string): Promise<Map<string, MlflowRun>> {
  const id = await client.getExperimentIdByName(experiment);
  if (id === undefined) return new Map<string, MlflowRun>();
  const runs = await client.searchRuns([id], '', 'ALL');
  return new Map(runs.map((r) => [(r.data.tags ?? []).find((t) => t.key === 'runtel.run_id')?.value ?? r.info.run_id, r]));
}

/** A value from readback.py, with MLflow's SQL-store stand-ins for ±Infinity (±max double) undone. */
export function pyValue(v: number | string): number {
  return decodeStoredValue(v);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
