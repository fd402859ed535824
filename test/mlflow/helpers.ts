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
import { mlflowPython, startMlflow } from '../services/index.js';
import type { MlflowHandle } from '../services/index.js';

/** A real MLflow server and a client for the tests of one file: started before them, stopped after. */
export function useMlflowServer(): { server: MlflowHandle; client: MlflowClient } {
  const ctx = {} as { server: MlflowHandle; client: MlflowClient };
  beforeAll(async () => {
    ctx.server = await startMlflow();
    ctx.client = new MlflowClient({ trackingUri: ctx.server.url });
  });
  afterAll(async () => {
    await ctx.client?.close();
    await ctx.server?.stop();
  });
  return ctx;
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
