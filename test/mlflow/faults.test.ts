// Faults with a real MLflow server: an outage, a slow server, a killed or crashing trainer.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import type { Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MlflowLogger } from '../../src/index.js';
import type { BackendFailure } from '../../src/index.js';
import { freePort } from '../services/index.js';
import { MLFLOW_STORES, runsByRuntelId, useMlflowServers, waitFor } from './helpers.js';

// The outage and the lost create-run answer on both stores (a restart of the server on a kept store;
// the run found again by an SQL search on its tag); the rest, decided in runtel or in a proxy, on SQLite.
const servers = useMlflowServers();
const mlflow = servers.sqlite;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(MLFLOW_STORES)('MLflow faults on a %s store', (store) => {
  const mlflow = servers[store];

  it('MLflow stopped for 30 s mid-run and restarted on the same store: every point exactly once, status right', async () => {
    const failures: BackendFailure[] = [];
    // finish() waits for the backlog the outage left (its default bound is 5 s).
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url, flushTimeoutMillis: 120_000, onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'outage', experiment: 'outage' });
    let step = 0;
    const logFor = async (millis: number) => {
      const end = Date.now() + millis;
      while (Date.now() < end) {
        run.logMetrics({ loss: 1 / (step + 1), acc: step / 1000 }, { step });
        step++;
        await sleep(10);
      }
    };
    await logFor(1500);
    await logger.forceFlush();
    await mlflow.server.stopFor(async () => {
      await logFor(31_000);
    });
    await logFor(1000);
    await run.finish();
    await logger.shutdown();
    const mlflowRun = (await runsByRuntelId(mlflow.client, 'outage')).get(run.id)!;
    expect(mlflowRun.info.status).toBe('FINISHED');
    for (const key of ['loss', 'acc']) {
      const steps = (await mlflow.client.getMetricHistory(mlflowRun.info.run_id, key)).map((m) => Number(m.step)).sort((a, b) => a - b);
      expect(steps).toEqual(Array.from({ length: step }, (_, i) => i));
    }
    expect(logger.stats().undeliveredPoints).toBe(0);
    expect(logger.stats().retries).toBeGreaterThan(0);
    // Only the notice that delivery is retrying, given when the outage began; nothing was lost.
    expect(failures.filter((f) => f.operation !== 'retry')).toEqual([]);
    expect(failures.filter((f) => f.operation === 'retry').map((f) => String(f.error))).toEqual([expect.stringMatching(/retrying in the background/)]);
  }, 180_000);

  it('a create-run whose answer is lost is retried without making a second run (found by its runtel.run_id tag)', async () => {
    let creates = 0;
    const proxy = await faultyProxy(mlflow.server.port, (path) => (path.endsWith('/runs/create') && creates++ === 0 ? { forward: true, dropAnswer: true } : { forward: true }));
    const failures: BackendFailure[] = [];
    const logger = new MlflowLogger({ trackingUri: proxy.url, retryMaxDelayMillis: 200, onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'lost-answer', experiment: 'lost-answer' });
    for (let step = 0; step < 100; step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
    await run.finish();
    await logger.shutdown();
    await proxy.close();
    expect(creates).toBe(1); // the retry found the run instead of creating it again
    // Only the notice that delivery is retrying, given when the outage began; nothing was lost.
    expect(failures.filter((f) => f.operation !== 'retry')).toEqual([]);
    expect(failures.filter((f) => f.operation === 'retry').map((f) => String(f.error))).toEqual([expect.stringMatching(/retrying in the background/)]);
    const runs = await runsByRuntelId(mlflow.client, 'lost-answer');
    expect([...runs.keys()]).toEqual([run.id]);
    expect((await mlflow.client.getMetricHistory(runs.get(run.id)!.info.run_id, 'loss')).length).toBe(100);
    expect(runs.get(run.id)!.info.status).toBe('FINISHED');
  });
});

describe('MLflow faults (SQLite)', () => {
  it('a slow server does not slow the training loop; the queue stays bounded and what overflows is counted', async () => {
    const proxy = await delayingProxy(mlflow.server.port, 1500);
    const logger = new MlflowLogger({ trackingUri: proxy.url, maxQueuedPoints: 5_000, flushTimeoutMillis: 120_000, onError: () => undefined });
    const run = logger.startRun({ name: 'slow', experiment: 'slow' });
    let maxQueued = 0;
    const start = performance.now();
    for (let step = 0; step < 50_000; step++) {
      run.logMetrics({ loss: step }, { step });
      if (step % 1000 === 0) maxQueued = Math.max(maxQueued, logger.stats().queuedPoints);
    }
    const loopMillis = performance.now() - start;
    // Not one proxied request (1.5 s each) could have completed: logMetrics never waited for one.
    expect(loopMillis).toBeLessThan(1500);
    expect(maxQueued).toBeLessThanOrEqual(5_000);
    await run.finish();
    await logger.shutdown();
    const stats = logger.stats();
    expect(stats.sentPoints + stats.undeliveredPoints).toBe(50_000);
    expect(stats.undeliveredPoints).toBeGreaterThanOrEqual(45_000);
    await proxy.close();
  });

  it('a slow server gets full batches: metrics that do not fill one wait while another of the run\'s batches is in flight', async () => {
    const sizes: number[] = [];
    // Each log-batch is held 1.5 s: the first is still in flight at the next tick (500 ms) and after it.
    const proxy = await faultyProxy(mlflow.server.port, (path, body) => {
      if (path.endsWith('/runs/log-batch')) sizes.push((JSON.parse(body) as { metrics?: unknown[] }).metrics?.length ?? 0);
      return { forward: true, delayMillis: path.endsWith('/runs/log-batch') ? 1500 : 0 };
    });
    const logger = new MlflowLogger({ trackingUri: proxy.url, onError: () => undefined });
    const run = logger.startRun({ name: 'full-batches', experiment: 'slow' });
    await logger.forceFlush();
    let step = 0;
    const log = (n: number) => {
      for (let i = 0; i < n; i++, step++) run.logMetrics({ loss: step }, { step });
    };
    log(1000); // a full batch: sent at once
    log(10);
    await sleep(800);
    log(980);
    await run.finish();
    await logger.shutdown();
    await proxy.close();
    // Without the wait: [1000, 10, 980] (the 10 would go at the first tick, the first batch still in flight).
    expect(sizes.filter((n) => n > 0)).toEqual([1000, 990]);
    const stored = (await runsByRuntelId(mlflow.client, 'slow')).get(run.id)!;
    expect((await mlflow.client.getMetricHistory(stored.info.run_id, 'loss')).length).toBe(1990);
  }, 60_000);

  // The proxy models the server: `serialized`, one log-batch at a time through MLflow, each 100 ms slower
  // for every other one in flight (as SQLite's lock); else each held 1 s first, independently (a server
  // with workers to spare; long enough that MLflow itself, one SQLite writer, is not what bounds 4 in flight). A fresh limit measures the ceiling, then 1, then keeps the better and measures its neighbours only as short visits.
  it.each([
    ['writes wait on each other: from 4 straight to 1, and it stays', 'serialized', 1, [4, 1]],
    ['more requests get more done: from 4 to 1, back to 4, and it stays', 'parallel', 4, [4, 1, 4]],
  ] as const)('a server whose %s', async (_name, model, expected, path) => {
    const proxy = await faultyProxy(mlflow.server.port, (path) => {
      if (!path.endsWith('/runs/log-batch')) return { forward: true };
      return model === 'parallel' ? { forward: true, delayMillis: 1000 } : { forward: true, exclusive: { millisPerOther: 100 } };
    });
    const logger = new MlflowLogger({ trackingUri: proxy.url, flushTimeoutMillis: 120_000, onError: () => undefined });
    const run = logger.startRun({ name: model, experiment: 'concurrency' });
    const seen: number[] = [];
    const poll = setInterval(() => {
      if (seen.at(-1) !== logger.stats().concurrencyLimit || seen.length === 0) seen.push(logger.stats().concurrencyLimit);
    }, 5);
    for (let step = 0; step < 60_000; step++) run.logMetrics({ loss: step }, { step });
    await run.finish();
    clearInterval(poll);
    const stats = logger.stats();
    await logger.shutdown();
    await proxy.close();
    // The levels in the order taken: the path, then at most short visits to a neighbour to measure it again.
    expect(seen.slice(0, path.length)).toEqual(path);
    expect(seen.slice(path.length).every((level, i) => (i % 2 === 0 ? level !== expected && Math.abs(Math.log2(level / expected)) === 1 : level === expected))).toBe(true);
    expect(stats).toMatchObject({ sentPoints: 60_000, undeliveredPoints: 0 });
    const stored = (await runsByRuntelId(mlflow.client, 'concurrency')).get(run.id)!;
    expect(new Set((await mlflow.client.getMetricHistory(stored.info.run_id, 'loss')).map((m) => m.step)).size).toBe(60_000);
  }, 120_000);

  it('a new run that may exist already (the bridge, the exporters, sync) is looked for by its tag only: a runtel id is an MLflow run id only when a run is resumed by one', async () => {
    const calls: string[] = [];
    const proxy = await faultyProxy(mlflow.server.port, (path) => {
      calls.push(path.replace(/\?.*/, ''));
      return { forward: true };
    });
    // An experiment that exists: a run in one runtel has just created is not looked for (next test).
    await mlflow.client.getOrCreateExperiment('lookups');
    const logger = new MlflowLogger({ trackingUri: proxy.url, findExistingRuns: true, onError: () => undefined });
    const run = logger.startRun({ name: 'lookups', experiment: 'lookups' });
    run.logMetrics({ loss: 1 }, { step: 0 });
    await run.finish();
    await logger.shutdown();
    await proxy.close();
    const created = calls.indexOf('/api/2.0/mlflow/runs/create');
    expect(created).toBeGreaterThan(0);
    // Before: runs/search, then runs/get by the runtel id (404), then runs/create.
    expect(calls.slice(0, created).filter((c) => c.startsWith('/api/2.0/mlflow/runs/'))).toEqual(['/api/2.0/mlflow/runs/search']);
    expect((await runsByRuntelId(mlflow.client, 'lookups')).get(run.id)?.info.status).toBe('FINISHED');
  });

  it('the first run in an experiment the target has just created is not looked for, as no run can be there yet; the next run in it is', async () => {
    const calls: string[] = [];
    const proxy = await faultyProxy(mlflow.server.port, (path) => {
      calls.push(path.replace(/\?.*/, ''));
      return { forward: true };
    });
    const logger = new MlflowLogger({ trackingUri: proxy.url, findExistingRuns: true, onError: () => undefined });
    const first = logger.startRun({ name: 'first', experiment: 'lookups-new' });
    await first.finish();
    await logger.forceFlush();
    const second = logger.startRun({ name: 'second', experiment: 'lookups-new' });
    await second.finish();
    await logger.shutdown();
    await proxy.close();
    const runCalls = calls.filter((c) => c.startsWith('/api/2.0/mlflow/runs/create') || c.startsWith('/api/2.0/mlflow/runs/search'));
    expect(calls.filter((c) => c === '/api/2.0/mlflow/experiments/create')).toHaveLength(1);
    // Before: search, create, search, create.
    expect(runCalls).toEqual(['/api/2.0/mlflow/runs/create', '/api/2.0/mlflow/runs/search', '/api/2.0/mlflow/runs/create']);
    const stored = await runsByRuntelId(mlflow.client, 'lookups-new');
    expect([stored.get(first.id)?.info.status, stored.get(second.id)?.info.status]).toEqual(['FINISHED', 'FINISHED']);
  });

  it("MLflow's 400 for an exhausted database pool is retried; any other 400 is not", async () => {
    const pool = JSON.stringify({ error_code: 'BAD_REQUEST', message: 'QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/21/3o7r)' });
    let batches = 0;
    const proxy = await faultyProxy(mlflow.server.port, (path) => (path.endsWith('/runs/log-batch') && batches++ < 3 ? { status: 400, body: pool } : { forward: true }));
    const failures: BackendFailure[] = [];
    const logger = new MlflowLogger({ trackingUri: proxy.url, retryMaxDelayMillis: 200, onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'pool', experiment: 'pool' });
    for (let step = 0; step < 50; step++) run.logMetrics({ loss: step }, { step });
    await run.finish();
    await logger.shutdown();
    await proxy.close();
    // Only the notice that delivery is retrying, given when the outage began; nothing was lost.
    expect(failures.filter((f) => f.operation !== 'retry')).toEqual([]);
    expect(failures.filter((f) => f.operation === 'retry').map((f) => String(f.error))).toEqual([expect.stringMatching(/retrying in the background/)]);
    expect(logger.stats().retries).toBeGreaterThanOrEqual(3);
    const stored = (await runsByRuntelId(mlflow.client, 'pool')).get(run.id)!;
    expect((await mlflow.client.getMetricHistory(stored.info.run_id, 'loss')).map((p) => p.value)).toEqual(Array.from({ length: 50 }, (_, i) => i));

    const other = await faultyProxy(mlflow.server.port, (path) => (path.endsWith('/runs/log-batch') ? { status: 400, body: JSON.stringify({ error_code: 'BAD_REQUEST', message: 'something else' }) } : { forward: true }));
    const failures2: BackendFailure[] = [];
    const logger2 = new MlflowLogger({ trackingUri: other.url, retryMaxDelayMillis: 200, onError: (f) => failures2.push(f) });
    const run2 = logger2.startRun({ name: 'bad', experiment: 'pool' });
    run2.logMetrics({ loss: 1 }, { step: 0 });
    await run2.finish();
    await logger2.shutdown();
    await other.close();
    expect(logger2.stats().retries).toBe(0);
    expect(failures2.map((f) => f.operation)).toContain('log-batch');
  });

  it('SIGTERM to the training process: the run is KILLED in MLflow within 5 s', async () => {
    const { runId, exitedAfterMillis } = await runChild('loop', 'SIGTERM');
    const mlflowRun = await waitFor('the run', async () => (await runsByRuntelId(mlflow.client, 'exit')).get(runId));
    expect(mlflowRun.info.status).toBe('KILLED');
    expect(exitedAfterMillis).toBeLessThan(5000);
  });

  it('an uncaught exception: the run is FAILED in MLflow', async () => {
    const { runId, code } = await runChild('throw');
    expect(code).toBe(1);
    const mlflowRun = await waitFor('the run', async () => (await runsByRuntelId(mlflow.client, 'exit')).get(runId));
    expect(mlflowRun.info.status).toBe('FAILED');
  });
});

function runChild(mode: string, signal?: NodeJS.Signals): Promise<{ runId: string; code: number | null; exitedAfterMillis: number }> {
  const child = fileURLToPath(new URL('../fixtures/mlflow-child.mjs', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'runtel-mlflow-exit-'));
  const env = { ...process.env };
  delete env.RUNTEL_EXIT_HANDLERS;
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, mlflow.server.url, dir, mode], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sentAt = Date.now();
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (signal !== undefined && out.includes('ready')) {
        setTimeout(() => {
          sentAt = Date.now();
          proc.kill(signal);
        }, 1500);
      }
    });
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ runId: /ready ([0-9a-f]{32})/.exec(out)?.[1] ?? '', code, exitedAfterMillis: Date.now() - sentAt }));
  });
}

/**
 * What a proxy does with one request: forward it (after a delay), forward it and drop the answer, or
 * answer itself. `exclusive`: forwarded only when no other exclusive one is (queued in order), and held
 * first `millisPerOther` for each other exclusive one in the proxy when it arrived.
 */
type ProxyAction = { forward: true; delayMillis?: number; dropAnswer?: boolean; exclusive?: { millisPerOther: number } } | { status: number; body: string };

/** An HTTP proxy to MLflow that asks `decide` what to do with each request. */
async function faultyProxy(targetPort: number, decide: (path: string, body: string) => ProxyAction): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  let exclusiveTail: Promise<void> = Promise.resolve();
  let exclusiveInFlight = 0;
  const proxy: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void (async () => {
      const action = decide(req.url ?? '', Buffer.concat(chunks).toString());
      if (!('forward' in action)) {
        res.writeHead(action.status, { 'content-type': 'application/json' });
        res.end(action.body);
        return;
      }
      let delayMillis = action.delayMillis ?? 0;
      if (action.exclusive !== undefined) {
        // Counted on arrival: behind a lock the next one may not have arrived when this one's turn comes.
        delayMillis += action.exclusive.millisPerOther * exclusiveInFlight;
        exclusiveInFlight++;
        const previous = exclusiveTail;
        let done = false;
        let release!: () => void;
        exclusiveTail = new Promise((resolve) => (release = resolve));
        const settle = () => {
          if (done) return;
          done = true;
          exclusiveInFlight--;
          release();
        };
        // 'finish': the answer is written, before the client can have it and send its next request.
        res.on('finish', settle);
        res.on('close', settle);
        await previous;
      }
      setTimeout(() => {
        const upstream = httpRequest({ host: '127.0.0.1', port: targetPort, path: req.url, method: req.method, headers: req.headers }, (up) => {
          if (action.dropAnswer === true) {
            // MLflow did the work; the client never hears of it (a timeout, a reset connection).
            up.resume();
            up.on('end', () => res.destroy());
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        upstream.on('error', () => res.destroy());
        upstream.end(Buffer.concat(chunks));
      }, delayMillis);
    })());
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { proxy.closeAllConnections(); proxy.close(() => resolve()); }),
  };
}

/** An HTTP proxy to MLflow that holds every request for `delayMillis` first. */
function delayingProxy(targetPort: number, delayMillis: number): Promise<{ url: string; close(): Promise<void> }> {
  return faultyProxy(targetPort, () => ({ forward: true, delayMillis }));
}
