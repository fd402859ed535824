// Points/s into a real MLflow server, on each store (SQLite, PostgreSQL), all cases in one run of
// this script:
// (a) runtel: 100,000 points (10 keys × 10,000 steps) from logMetrics until all are in MLflow;
// (b) MLflow's Python MlflowClient().log_batch, 1000 metrics a request, sequential;
// (c) MLflow's Python async logging (synchronous=False);
// (d) the server's ceiling: raw log-batch requests of 1000 metrics at the best concurrency found.
// Targets, on each store against that store's own (b) and (d): (a) ≥ 1.0× (b) and ≥ 0.95× (d).
// Each case gets a fresh server and store (SQLite slows down as its metric table grows, so a shared
// store would favour whichever case ran first).
// Run: npx tsx bench/mlflow-ingest.ts [keys] [steps]   (needs `bash scripts/provision.sh mlflow postgres`)
// Env: BENCH_STORES=sqlite,postgres  BENCH_WORKERS (server workers; default 1 on SQLite, 2 on
// PostgreSQL)  BENCH_REPEATS=2  BENCH_CONCURRENCY=1,2,4 (runtel's maxConcurrentRequests) and
// BENCH_BATCH=500,1000 (its maxMetricsPerBatch): each combination is an (a) case measured in every
// round (default: the library's defaults)

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MlflowLogger } from '../src/index.js';
import { mlflowPython } from '../test/services/index.js';
import { ceilingCase, describeSetup, serverSetups, withServer } from './mlflow-server.js';
import type { ServerSetup } from './mlflow-server.js';

const keys = Number(process.argv[2] ?? 10);
const steps = Number(process.argv[3] ?? 10_000);
const points = keys * steps;
const repeats = Number(process.env.BENCH_REPEATS ?? 2);
const setups = serverSetups();
/** runtel's sender settings per (a) case; undefined: the library's default. */
interface Variant {
  maxConcurrentRequests: number | undefined;
  maxMetricsPerBatch: number | undefined;
}
const list = (env: string | undefined): Array<number | undefined> => (env ? env.split(',').map(Number) : [undefined]);
const variants: Variant[] = list(process.env.BENCH_CONCURRENCY).flatMap((maxConcurrentRequests) => list(process.env.BENCH_BATCH).map((maxMetricsPerBatch) => ({ maxConcurrentRequests, maxMetricsPerBatch })));


async function runtelCase(setup: ServerSetup, variant: Variant): Promise<number> {
  return withServer(setup, async (server) => {
    const logger = new MlflowLogger({
      trackingUri: server.url,
      flushTimeoutMillis: 600_000,
      ...(variant.maxConcurrentRequests !== undefined ? { maxConcurrentRequests: variant.maxConcurrentRequests } : {}),
      ...(variant.maxMetricsPerBatch !== undefined ? { maxMetricsPerBatch: variant.maxMetricsPerBatch } : {}),
    });
    const names = Array.from({ length: keys }, (_, k) => `metric_${k}`);
    const start = performance.now();
    const run = logger.startRun({ name: 'runtel', experiment: 'bench-runtel' });
    for (let step = 0; step < steps; step++) {
      const values: Record<string, number> = {};
      for (let k = 0; k < keys; k++) values[names[k]!] = step * 0.001 + k;
      run.logMetrics(values, { step });
    }
    await logger.forceFlush();
    const seconds = (performance.now() - start) / 1000;
    await run.finish();
    await logger.shutdown();
    const stats = logger.stats();
    if (stats.sentPoints !== points) throw new Error(`runtel delivered ${stats.sentPoints} of ${points} points`);
    return points / seconds;
  });
}

async function pythonCase(setup: ServerSetup, mode: 'sync' | 'async'): Promise<number> {
  const out = await withServer(setup, (server) => python(server.url, mode));
  return out.points / out.seconds;
}

function fmt(v: number): string {
  return Math.round(v).toLocaleString();
}

const label = (v: Variant): string =>
  ['runtel MlflowLogger', ...(v.maxConcurrentRequests !== undefined ? [`${v.maxConcurrentRequests} in flight`] : []), ...(v.maxMetricsPerBatch !== undefined ? [`batches of ${v.maxMetricsPerBatch}`] : [])].join(', ');
const short = (v: Variant): string => `(a${v.maxConcurrentRequests !== undefined ? ` ×${v.maxConcurrentRequests}` : ''}${v.maxMetricsPerBatch !== undefined ? ` /${v.maxMetricsPerBatch}` : ''})`;

// Pre-built bodies: only HTTP and the server's work are timed.
// First each store's ceiling concurrency is found; then every case runs once per round, interleaved
// across stores, and each case's best round counts (the same number of tries for each).
const benchStart = performance.now();
const ceilingConcurrency = new Map<ServerSetup, number>();
for (const setup of setups) {
  let calibration = 0;
  for (const concurrency of [1, 2, 4, 8]) {
    const v = await ceilingCase(setup, keys, steps, concurrency);
    console.log(`  calibration (${describeSetup(setup)}): (d) ×${concurrency} ${fmt(v)}`);
    if (v > calibration) {
      calibration = v;
      ceilingConcurrency.set(setup, concurrency);
    }
  }
}
interface Best {
  a: number[];
  b: number;
  c: number;
  d: number;
}
const best = new Map<ServerSetup, Best>(setups.map((s) => [s, { a: variants.map(() => 0), b: 0, c: 0, d: 0 }]));
for (let rep = 1; rep <= repeats; rep++) {
  for (const setup of setups) {
    const a: number[] = [];
    for (const c of variants) a.push(await runtelCase(setup, c));
    const round = { a, b: await pythonCase(setup, 'sync'), c: await pythonCase(setup, 'async'), d: await ceilingCase(setup, keys, steps, ceilingConcurrency.get(setup)!) };
    console.log(`  round ${rep} (${describeSetup(setup)}): ${a.map((v, i) => `${short(variants[i]!)} ${fmt(v)}`).join('  ')}  (b) ${fmt(round.b)}  (c) ${fmt(round.c)}  (d) ×${ceilingConcurrency.get(setup)} ${fmt(round.d)}`);
    const b = best.get(setup)!;
    a.forEach((v, i) => (b.a[i] = Math.max(b.a[i]!, v)));
    b.b = Math.max(b.b, round.b);
    b.c = Math.max(b.c, round.c);
    b.d = Math.max(b.d, round.d);
  }
}

console.log(`\nbench/mlflow-ingest: ${points.toLocaleString()} points (${keys} keys × ${steps} steps) per case, best of ${repeats} rounds (${((performance.now() - benchStart) / 1000).toFixed(0)} s)`);
const targets: string[] = [];
for (const setup of setups) {
  const b = best.get(setup)!;
  console.log(`\nMLflow 3.17.2 on ${describeSetup(setup)}:`);
  variants.forEach((variant, i) => {
    const v = b.a[i]!;
    console.log(`${`(a) ${label(variant)}`.padEnd(52)} ${fmt(v).padStart(8)} points/s   ${(v / b.b).toFixed(2)}× (b)   ${(v / b.d).toFixed(2)}× (d)`);
  });
  console.log(`${'(b) Python log_batch, sequential'.padEnd(52)} ${fmt(b.b).padStart(8)} points/s`);
  console.log(`${'(c) Python async logging'.padEnd(52)} ${fmt(b.c).padStart(8)} points/s   (a) is ${(b.a[0]! / b.c).toFixed(2)}× this`);
  console.log(`${`(d) server ceiling, raw log-batch ×${ceilingConcurrency.get(setup)}`.padEnd(52)} ${fmt(b.d).padStart(8)} points/s`);
  const a0 = b.a[0]!;
  targets.push(`${setup.store}: ${short(variants[0]!)} ${(a0 / b.b).toFixed(2)}× (b) ${a0 >= b.b ? 'met' : 'NOT met'}, ${(a0 / b.d).toFixed(2)}× (d) ${a0 >= 0.95 * b.d ? 'met' : 'NOT met'}`);
}
console.log(`\ntargets, each store against its own baselines — (a) ≥ 1.0× (b), (a) ≥ 0.95× (d): ${targets.join('; ')}`);

function python(url: string, mode: 'sync' | 'async'): Promise<{ seconds: number; points: number }> {
  const script = fileURLToPath(new URL('./mlflow_client_ingest.py', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(mlflowPython(), [script, url, mode, String(keys), String(steps)], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`mlflow_client_ingest.py ${mode}: ${stderr.slice(-2000)}`));
      // MLflow prints a "View run" line of its own: the result is the last line.
      else resolve(JSON.parse(stdout.trim().split("\n").pop()!) as { seconds: number; points: number });
    });
  });
}
