// WandbLogger against the test server: what W&B ends up holding for runtel runs.

import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Experiment } from '../../src/experiment/Experiment.js';
import { backendsFromEnv } from '../../src/backends/createLoggerFromEnv.js';
import { WandbLogger } from '../../src/wandb/WandbLogger.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { WandbTestServer } from './server.js';
import { API_KEY_40, API_KEY_86, historyOffsetsContiguous, pointsOf, rowsWandbKeeps, sleep, testLogger, waitFor } from './helpers.js';

let server: WandbTestServer;
beforeAll(async () => {
  server = await WandbTestServer.start();
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  vi.unstubAllEnvs();
});

const T0 = 1_700_000_000_000;

describe('WandbLogger: history, config and summary', () => {
  it('writes one row per step with every point, NaN and ±Infinity as bare tokens', async () => {
    const { logger, failures } = testLogger(server);
    const run = logger.startRun({ name: 'rows', experiment: 'wandb-rows' });
    for (let step = 0; step < 10; step++) {
      run.logMetrics({ loss: 1 / (step + 1), acc: step / 10 }, { step, timestamp: T0 + step * 1000 });
      // A second call at the same step joins the same row.
      run.logMetrics({ lr: 0.1 * 0.9 ** step }, { step, timestamp: T0 + step * 1000 + 500 });
    }
    run.logMetrics({ nan: NaN, inf: Infinity, ninf: -Infinity, zero: -0 }, { step: 10, timestamp: T0 + 10_000 });
    await run.finish();
    await logger.shutdown();

    const stored = server.getRun('wandb-rows', wandbRunId(run.id))!;
    expect(failures).toEqual([]);
    expect(stored.historyLines).toHaveLength(11);
    const rows = server.history(stored);
    for (let step = 0; step < 10; step++) {
      expect(rows[step]).toMatchObject({ _step: step, 'runtel/step': step, loss: 1 / (step + 1), acc: step / 10, lr: 0.1 * 0.9 ** step, _timestamp: (T0 + step * 1000 + 500) / 1000 });
      expect(Object.keys(rows[step]!).sort()).toEqual(['_runtime', '_step', '_timestamp', 'acc', 'loss', 'lr', 'runtel/step']);
    }
    const last = stored.historyLines[10]!;
    expect(last).toContain('"nan":NaN');
    expect(last).toContain('"inf":Infinity');
    expect(last).toContain('"ninf":-Infinity');
    expect(last).not.toContain('null');
    expect(rows[10]).toMatchObject({ _step: 10, nan: NaN, inf: Infinity, ninf: -Infinity, zero: 0 });
    expect(historyOffsetsContiguous(server, stored)).toBe(true);
    expect(stored.complete).toBe(true);
    expect(stored.exitcode).toBe(0);
    expect(stored.state).toBe('finished');
    expect(stored.summaryLine).toContain('"nan":NaN');
    expect(stored.summary).toMatchObject({ loss: 0.1, acc: 0.9, inf: Infinity, ninf: -Infinity, _step: 10 });
    expect(Number.isNaN(stored.summary.nan)).toBe(true);
    expect(logger.stats()).toMatchObject({ sentPoints: 34, queuedPoints: 0, undeliveredPoints: 0, historyLines: 11 });
  });

  it('sends params as nested, typed config, tags, and the last value of each metric as summary', async () => {
    const { logger } = testLogger(server);
    const run = logger.startRun({
      name: 'config-run',
      experiment: 'wandb-config',
      config: { lr: 0.001, epochs: 10, model: { layers: 2, act: 'relu', dims: [64, 32] }, flag: true, version: '1.0', zip: '007', nothing: null, big: 1e21 },
      tags: { team: 'ml', baseline: '' },
    });
    run.logParams({ batch: { size: 32 } });
    run.setTags({ stage: 'dev' });
    run.logMetrics({ loss: 0.5 }, { step: 5 });
    run.logMetrics({ loss: 9 }, { step: 3 }); // an older step: not the latest value
    run.logMetrics({ acc: 0.7 }, { step: 5 });
    await run.finish();
    await logger.shutdown();

    const stored = server.getRun('wandb-config', wandbRunId(run.id))!;
    const config = stored.config as Record<string, { value: unknown }>;
    expect(config.lr).toEqual({ value: 0.001 });
    expect(config.epochs).toEqual({ value: 10 });
    expect(config.model).toEqual({ value: { layers: 2, act: 'relu', dims: [64, 32] } });
    expect(config.flag).toEqual({ value: true });
    expect(config.version).toEqual({ value: '1.0' });
    expect(config.zip).toEqual({ value: '007' });
    expect(config.nothing).toEqual({ value: null });
    expect(config.big).toEqual({ value: 1e21 });
    expect(config.batch).toEqual({ value: { size: 32 } });
    expect(config.runtel_run_id).toEqual({ value: run.id });
    expect(config.runtel_experiment).toEqual({ value: 'wandb-config' });
    expect(config.runtel_tags).toEqual({ value: { team: 'ml', baseline: '', stage: 'dev' } });
    expect(config.runtel_status).toEqual({ value: 'success' });
    expect(config._wandb).toEqual({ value: { m: [{ '1': 'runtel/step', '6': [3, 2] }, { '2': '*', '5': 1, '6': [1] }] } });
    expect(Object.keys(config).filter((k) => !(k in { _wandb: 1 }) && !k.startsWith('runtel_')).sort()).toEqual(['batch', 'big', 'epochs', 'flag', 'lr', 'model', 'nothing', 'version', 'zip']);
    expect(stored.tags.sort()).toEqual(['baseline', 'stage=dev', 'team=ml']);
    expect(stored.displayName).toBe('config-run');
    expect(stored.name).toBe(wandbRunId(run.id));
    expect(stored.name).toMatch(/^[0-9a-z]{13}$/);
    expect(stored.summary).toMatchObject({ loss: 0.5, acc: 0.7 });
  });

  it('groups an experiment: root run as the group and `parent`, trials as `trial`, other nested runs as `child`', async () => {
    const { logger, failures } = testLogger(server);
    const experiment = new Experiment({ logger, name: 'wandb-search' });
    const summary = await experiment.run({ grid: { lr: [0.1, 0.01, 0.001] }, concurrency: 2 }, (params, run) => {
      run.logMetrics({ loss: params.lr * 10 }, { step: 0 });
      return params.lr;
    });
    const other = logger.startRun({ name: 'side', experiment: 'wandb-search', parent: { id: summary.runId } as never });
    await other.finish();
    await logger.shutdown();

    expect(failures).toEqual([]);
    const rootId = wandbRunId(summary.runId);
    const root = server.getRun('wandb-search', rootId)!;
    expect(root.group).toBe(rootId);
    expect(root.jobType).toBe('parent');
    expect(root.exitcode).toBe(0);
    for (const trial of summary.trials) {
      const stored = server.getRun('wandb-search', wandbRunId(trial.runId))!;
      expect(stored.group).toBe(rootId);
      expect(stored.jobType).toBe('trial');
      expect((stored.config.parent_run_id as { value: string }).value).toBe(rootId);
      expect((stored.config.runtel_parent_run_id as { value: string }).value).toBe(summary.runId);
      expect((stored.config.lr as { value: number }).value).toBe(trial.params.lr);
      expect(stored.exitcode).toBe(0);
    }
    const side = server.getRun('wandb-search', wandbRunId(other.id))!;
    expect(side.group).toBe(rootId);
    expect(side.jobType).toBe('child');
  });

  it('uses WANDB_RUN_GROUP and WANDB_JOB_TYPE for runs that are not nested', async () => {
    vi.stubEnv('WANDB_RUN_GROUP', 'sweep-7');
    vi.stubEnv('WANDB_JOB_TYPE', 'train');
    const { logger } = testLogger(server);
    const run = logger.startRun({ name: 'grouped', experiment: 'wandb-env-group' });
    await run.finish();
    await logger.shutdown();
    const stored = server.getRun('wandb-env-group', wandbRunId(run.id))!;
    expect(stored.group).toBe('sweep-7');
    expect(stored.jobType).toBe('train');
  });

  it('finishes failed runs with exit code 1 and killed runs with 143', async () => {
    const { logger } = testLogger(server);
    const failed = logger.startRun({ name: 'failing', experiment: 'wandb-exit' });
    failed.logMetrics({ loss: 1 }, { step: 0 });
    await failed.finish('failed', new TypeError('boom'));
    const killed = logger.startRun({ name: 'killed', experiment: 'wandb-exit' });
    killed.logMetrics({ loss: 2 }, { step: 0 });
    await logger.shutdown(); // finishes the running run as killed

    const f = server.getRun('wandb-exit', wandbRunId(failed.id))!;
    expect(f).toMatchObject({ complete: true, exitcode: 1, state: 'failed' });
    expect(f.config.runtel_status).toEqual({ value: 'failed' });
    expect(f.config.runtel_error).toEqual({ value: 'TypeError: boom' });
    const k = server.getRun('wandb-exit', wandbRunId(killed.id))!;
    expect(k).toMatchObject({ complete: true, exitcode: 143, state: 'failed' });
    expect(k.config.runtel_status).toEqual({ value: 'killed' });
    expect(server.history(k)).toHaveLength(1);
  });
});

describe('WandbLogger: steps that arrive late', () => {
  it('writes late points as rows after the last `_step`, carrying their runtel step, so W&B keeps every point', async () => {
    const { logger, failures } = testLogger(server);
    const run = logger.startRun({ name: 'late', experiment: 'wandb-late' });
    for (let step = 0; step <= 2; step++) run.logMetrics({ train: step }, { step, timestamp: T0 + step });
    await logger.forceFlush(); // steps 0-2 are on the server now
    run.logMetrics({ val: 10 }, { step: 1, timestamp: T0 + 10 }); // late
    run.logMetrics({ val: 20 }, { step: 2, timestamp: T0 + 11 }); // late
    run.logMetrics({ train: 3 }, { step: 3, timestamp: T0 + 12 });
    run.logMetrics({ train: 33 }, { step: 3, timestamp: T0 + 13 }); // the same key twice at one step: two rows
    run.logMetrics({ train: 4 }, { step: 4, timestamp: T0 + 14 });
    await run.finish();
    await logger.shutdown();

    expect(failures).toEqual([]);
    const stored = server.getRun('wandb-late', wandbRunId(run.id))!;
    const rows = server.history(stored);
    // W&B's own rule keeps every row: `_step` never goes backwards.
    expect(rowsWandbKeeps(rows)).toEqual(rows);
    expect(rows.map((r) => [r._step, r['runtel/step']])).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
      // The late rows: after the last `_step`, each with its own runtel step.
      [5, 1],
      [6, 2],
      [7, 3],
    ]);
    expect(pointsOf(rows)).toEqual([
      [0, 'train', 0],
      [1, 'train', 1],
      [1, 'val', 10],
      [2, 'train', 2],
      [2, 'val', 20],
      [3, 'train', 3],
      [3, 'train', 33],
      [4, 'train', 4],
    ]);
    // The charts plot every metric against runtel/step (define_metric in the config).
    expect((stored.config._wandb as { value: { m: unknown[] } }).value.m).toContainEqual({ '2': '*', '5': 1, '6': [1] });
    expect(stored.summary).toMatchObject({ train: 4, val: 20 });
    expect(logger.stats().remappedRows).toBe(3);
  });

  it('merges points logged in any order into rows by step before they are sent', async () => {
    const { logger } = testLogger(server, { flushIntervalMillis: 60_000 });
    const run = logger.startRun({ name: 'shuffled', experiment: 'wandb-late' });
    run.logMetrics({ a: 5 }, { step: 5 });
    run.logMetrics({ a: 1 }, { step: 1 });
    run.logMetrics({ b: 1 }, { step: 1 });
    run.logMetrics({ a: 3 }, { step: 3 });
    run.logMetrics({ b: 5 }, { step: 5 });
    await run.finish();
    await logger.shutdown();
    const rows = server.history(server.getRun('wandb-late', wandbRunId(run.id))!);
    expect(rowsWandbKeeps(rows)).toEqual(rows);
    expect(rows.map((r) => ({ s: r._step, rs: r['runtel/step'], a: r.a, b: r.b }))).toEqual([
      { s: 1, rs: 1, a: 1, b: 1 },
      { s: 3, rs: 3, a: 3, b: undefined },
      { s: 5, rs: 5, a: 5, b: 5 },
    ]);
  });
});

describe('WandbLogger: limits', () => {
  it('splits a row larger than the line limit into rows of the same runtel step, and reports it once', async () => {
    const { logger, failures } = testLogger(server, { maxLineBytes: 400 });
    const run = logger.startRun({ name: 'wide', experiment: 'wandb-limits' });
    const values: Record<string, number> = {};
    for (let i = 0; i < 40; i++) values[`metric_${String(i).padStart(2, '0')}`] = i;
    run.logMetrics(values, { step: 0 });
    run.logMetrics(values, { step: 1 });
    await run.finish();
    await logger.shutdown();
    const stored = server.getRun('wandb-limits', wandbRunId(run.id))!;
    for (const line of stored.historyLines) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(400);
    const rows = server.history(stored);
    expect(rows.filter((r) => r['runtel/step'] === 0).length).toBeGreaterThanOrEqual(2);
    expect(new Set(rows.map((r) => r._step)).size).toBe(rows.length);
    expect(rowsWandbKeeps(rows)).toEqual(rows);
    expect(pointsOf(rows)).toHaveLength(80);
    expect(pointsOf(rows).filter(([step]) => step === 1).map(([, key, value]) => [key, value])).toEqual(Object.entries(values));
    expect(failures.filter((f) => f.operation === 'history')).toHaveLength(1);
    expect(String(failures[0]!.error)).toMatch(/split into \d+ rows/);
  });

  it('keeps each file_stream request under the request limit, with contiguous offsets', async () => {
    const { logger } = testLogger(server, { maxRequestBytes: 4096, flushIntervalMillis: 60_000 });
    const run = logger.startRun({ name: 'many', experiment: 'wandb-limits' });
    for (let step = 0; step < 300; step++) run.logMetrics({ loss: step / 7, acc: step / 300 }, { step });
    await run.finish();
    await logger.shutdown();
    const stored = server.getRun('wandb-limits', wandbRunId(run.id))!;
    const streams = server.fileStreams(stored.name);
    expect(streams.length).toBeGreaterThan(5);
    for (const request of streams) expect(Buffer.byteLength(request.text)).toBeLessThanOrEqual(4096);
    expect(stored.historyLines).toHaveLength(300);
    expect(historyOffsetsContiguous(server, stored)).toBe(true);
    expect(server.history(stored).map((r) => r._step)).toEqual([...Array(300).keys()]);
  });
});

describe('WandbLogger: heartbeats, retries and failures', () => {
  it('sends a heartbeat when a running run has had nothing to send for the interval', async () => {
    const { logger } = testLogger(server, { heartbeatIntervalMillis: 100, flushIntervalMillis: 20 });
    const run = logger.startRun({ name: 'idle', experiment: 'wandb-heartbeat' });
    run.logMetrics({ x: 1 }, { step: 0 });
    const stored = await (async () => {
      await waitFor(() => server.getRun('wandb-heartbeat', wandbRunId(run.id)) !== undefined);
      return server.getRun('wandb-heartbeat', wandbRunId(run.id))!;
    })();
    await waitFor(() => stored.heartbeats >= 3, 5_000);
    const heartbeats = server.fileStreams(stored.name).filter((r) => r.text === '{}');
    expect(heartbeats.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < heartbeats.length; i++) expect(heartbeats[i]!.time - heartbeats[i - 1]!.time).toBeGreaterThanOrEqual(80);
    expect(stored.complete).toBe(false);
    await run.finish();
    await logger.shutdown();
    expect(stored.complete).toBe(true);
    expect(logger.stats().heartbeats).toBe(heartbeats.length);
  });

  it('retries 500 and 429 (after Retry-After) and connection resets, and loses nothing', async () => {
    const { logger, failures } = testLogger(server);
    server.failNext(2, { status: 500, match: /UpsertBucket/ });
    server.failNext(2, { status: 429, match: /file_stream/, retryAfterSeconds: 0.1 });
    server.failNext(1, { status: 'reset', match: /file_stream/ });
    server.failNext(1, { status: 503, match: /file_stream/ });
    const run = logger.startRun({ name: 'flaky', experiment: 'wandb-retry' });
    for (let step = 0; step < 20; step++) run.logMetrics({ loss: step }, { step });
    await run.finish();
    await logger.shutdown();

    // Only the notices that delivery is retrying, one when each outage began; nothing was lost.
    expect(failures.filter((f) => f.operation !== 'retry')).toEqual([]);
    expect(failures.filter((f) => f.operation === 'retry').map((f) => String(f.error))).toEqual([
      expect.stringMatching(/^Error: W&B http:\/\/127\.0\.0\.1:\d+\/: UpsertBucket: HTTP 500 .*; retrying in the background for up to 24 h/),
      expect.stringMatching(/^Error: W&B http:\/\/127\.0\.0\.1:\d+\/: file_stream: HTTP 429 .*; retrying in the background/),
    ]);
    const stored = server.getRun('wandb-retry', wandbRunId(run.id))!;
    expect(server.history(stored).map((r) => r.loss)).toEqual([...Array(20).keys()]);
    expect(stored.exitcode).toBe(0);
    const statuses = server.requests.filter((r) => r.path.includes(stored.name) || r.variables?.name === stored.name).map((r) => r.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    expect(statuses.filter((s) => s === -1)).toHaveLength(1);
    expect(server.graphql('UpsertBucket').filter((r) => r.variables?.name === stored.name && r.status === 500)).toHaveLength(2);
    // Retry-After is honoured: the attempt after a 429 waits at least that long.
    const streams = server.fileStreams(stored.name);
    const i429 = streams.findIndex((r) => r.status === 429);
    expect(streams[i429 + 1]!.time - streams[i429]!.time).toBeGreaterThanOrEqual(95);
    expect(logger.stats().retries).toBe(6);
  });

  it.each([400, 401, 403, 404, 409])('does not retry %i: reports it once, drops the run, never shows the key', async (status) => {
    const { logger, failures } = testLogger(server, { entity: 'runtel-test' });
    server.failNext(2, { status, match: /UpsertBucket/ });
    const a = logger.startRun({ name: `perm-${status}-a`, experiment: 'wandb-permanent' });
    const b = logger.startRun({ name: `perm-${status}-b`, experiment: 'wandb-permanent' });
    a.logMetrics({ x: 1 }, { step: 0 });
    b.logMetrics({ x: 1, y: 2 }, { step: 0 });
    await a.finish();
    await b.finish();
    await logger.shutdown();
    const attempts = server.graphql('UpsertBucket').filter((r) => [wandbRunId(a.id), wandbRunId(b.id)].includes(r.variables?.name as string));
    expect(attempts.map((r) => r.status)).toEqual([status, status]);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.operation).toBe('upsert-run');
    expect(String(failures[0]!.error)).toContain(`HTTP ${status}`);
    expect(`${String(failures[0]!.error)} ${(failures[0]!.error as Error).stack}`).not.toContain(API_KEY_40);
    expect(server.fileStreams(wandbRunId(a.id))).toHaveLength(0);
    expect(logger.stats()).toMatchObject({ undeliveredPoints: 3, queuedPoints: 0, retries: 0 });
  });

  it('answers a wrong key with one 401 report, and the key appears in no error', async () => {
    const strict = await WandbTestServer.start({ apiKey: API_KEY_86 });
    try {
      const { logger, failures } = testLogger(strict, { apiKey: API_KEY_40 });
      const run = logger.startRun({ name: 'unauthorized', experiment: 'wandb-auth' });
      run.logMetrics({ x: 1 }, { step: 0 });
      await run.finish();
      const run2 = logger.startRun({ name: 'unauthorized-2', experiment: 'wandb-auth' });
      await run2.finish();
      await logger.shutdown();
      expect(failures).toHaveLength(1);
      expect(failures[0]!.operation).toBe('upsert-run');
      expect(String(failures[0]!.error)).toMatch(/Viewer: HTTP 401/);
      const text = `${String(failures[0]!.error)} ${(failures[0]!.error as Error).stack} ${JSON.stringify(failures[0])}`;
      expect(text).not.toContain(API_KEY_40);
      expect(text).not.toContain(Buffer.from(`api:${API_KEY_40}`).toString('base64'));
      expect(strict.requests.every((r) => r.status === 401)).toBe(true);
      expect(strict.requests).toHaveLength(2); // one Viewer per run, none retried

      // The 86-character key authenticates as user `api`.
      const ok = testLogger(strict, { apiKey: API_KEY_86 });
      const good = ok.logger.startRun({ name: 'authorized', experiment: 'wandb-auth' });
      good.logMetrics({ x: 1 }, { step: 0 });
      await good.finish();
      await ok.logger.shutdown();
      expect(ok.failures).toEqual([]);
      expect(strict.getRun('wandb-auth', wandbRunId(good.id))?.exitcode).toBe(0);
      const auth = strict.requests[strict.requests.length - 1]!.authorization!;
      expect(Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString()).toBe(`api:${API_KEY_86}`);
    } finally {
      await strict.close();
    }
  });
});

describe('WandbLogger: files, environment and modes', () => {
  it('uploads artifacts and models with CreateRunFiles and PUT, and announces them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-wandb-files-'));
    try {
      writeFileSync(join(dir, 'report.txt'), 'hello W&B');
      mkdirSync(join(dir, 'ckpt', 'sub'), { recursive: true });
      writeFileSync(join(dir, 'ckpt', 'a.bin'), Buffer.from([1, 2, 3]));
      writeFileSync(join(dir, 'ckpt', 'sub', 'b.json'), '{"b":1}');
      const { logger, failures } = testLogger(server);
      const run = logger.startRun({ name: 'files', experiment: 'wandb-files' });
      run.logArtifact(join(dir, 'report.txt'));
      run.logArtifact(join(dir, 'ckpt'), { name: 'checkpoints' });
      run.logModel({ weights: [1, 2, 3] }, { name: 'tiny' });
      await run.finish();
      await logger.shutdown();
      expect(failures).toEqual([]);
      const stored = server.getRun('wandb-files', wandbRunId(run.id))!;
      expect(stored.files.get('report.txt')?.toString()).toBe('hello W&B');
      expect([...stored.files.get('checkpoints/a.bin')!]).toEqual([1, 2, 3]);
      expect(stored.files.get('checkpoints/sub/b.json')?.toString()).toBe('{"b":1}');
      const modelFiles = [...stored.files.keys()].filter((name) => name.startsWith('models/tiny/'));
      expect(modelFiles.length).toBeGreaterThanOrEqual(2);
      expect(modelFiles).toContain('models/tiny/runtel-model.json');
      expect(stored.uploaded.sort()).toEqual([...stored.files.keys()].sort());
      expect(server.graphql('CreateRunFiles').filter((r) => r.variables?.run === stored.name).length).toBe(3);
      // Signed upload URLs get no W&B credentials.
      expect(server.requests.filter((r) => r.method === 'PUT').every((r) => r.authorization === undefined)).toBe(true);
      expect(readFileSync(join(dir, 'report.txt'), 'utf8')).toBe('hello W&B');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads WANDB_API_KEY, WANDB_BASE_URL, WANDB_PROJECT and WANDB_ENTITY', async () => {
    vi.stubEnv('WANDB_API_KEY', API_KEY_86);
    vi.stubEnv('WANDB_BASE_URL', server.url);
    vi.stubEnv('WANDB_PROJECT', 'from-env');
    vi.stubEnv('WANDB_ENTITY', 'team-env');
    vi.stubEnv('WANDB_MODE', '');
    const logger = new WandbLogger({ flushIntervalMillis: 50 });
    const run = logger.startRun({ name: 'env', experiment: 'ignored-for-project' });
    run.logMetrics({ x: 1 });
    await run.finish();
    await logger.shutdown();
    const stored = server.getRun('from-env', wandbRunId(run.id), 'team-env')!;
    expect(stored.exitcode).toBe(0);
    expect(stored.config.runtel_experiment).toEqual({ value: 'ignored-for-project' });
    expect(server.getRun('ignored-for-project', wandbRunId(run.id))).toBeUndefined();
  });

  it('is chosen by createLoggerFromEnv when a key is set and the mode is online', () => {
    vi.stubEnv('RUNTEL_BACKENDS', '');
    vi.stubEnv('MLFLOW_TRACKING_URI', '');
    vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', '');
    vi.stubEnv('WANDB_API_KEY', '');
    expect(backendsFromEnv()).not.toContain('wandb');
    vi.stubEnv('WANDB_API_KEY', API_KEY_40);
    vi.stubEnv('WANDB_MODE', '');
    expect(backendsFromEnv()).toContain('wandb');
    vi.stubEnv('WANDB_MODE', 'offline');
    expect(backendsFromEnv()).not.toContain('wandb');
    vi.stubEnv('WANDB_MODE', 'disabled');
    expect(backendsFromEnv()).not.toContain('wandb');
    vi.stubEnv('RUNTEL_BACKENDS', 'jsonl,wandb');
    expect(backendsFromEnv()).toEqual(['jsonl', 'wandb']);
  });

  it('sends nothing in offline and disabled mode', async () => {
    const before = server.requests.length;
    for (const mode of ['offline', 'disabled'] as const) {
      vi.stubEnv('WANDB_API_KEY', '');
      const logger = new WandbLogger({ mode, baseUrl: server.url });
      const run = logger.startRun({ name: `mode-${mode}`, experiment: 'wandb-offline' });
      run.logMetrics({ x: 1 }, { step: 0 });
      await run.finish();
      await logger.shutdown();
      expect(logger.backend.client).toBeUndefined();
    }
    vi.stubEnv('WANDB_MODE', 'offline');
    expect(new WandbLogger({ baseUrl: server.url }).backend.mode).toBe('offline');
    await sleep(50);
    expect(server.requests.length).toBe(before);
  });
});

describe('WandbLogger: resumed runs and late data', () => {
  it('continues a resumed run after the lines W&B has, with `_step`s and summary carried on', async () => {
    const { CompositeLogger } = await import('../../src/backends/CompositeLogger.js');
    const { InMemoryLogger } = await import('../../src/backends/InMemoryLogger.js');
    const memory = new InMemoryLogger();
    const first = testLogger(server);
    const logger1 = new CompositeLogger([memory, first.logger]);
    const run = logger1.startRun({ name: 'resumable', experiment: 'wandb-resume' });
    for (let step = 0; step < 5; step++) run.logMetrics({ loss: step }, { step });
    run.logMetrics({ only_before: 1 }, { step: 4 });
    await run.finish('killed');
    await logger1.shutdown();

    // A new process: the local store (here in memory) knows the run; W&B is asked for the rest.
    const second = testLogger(server);
    const logger2 = new CompositeLogger([memory, second.logger]);
    const resumed = logger2.startRun({ runId: run.id });
    resumed.logMetrics({ loss: 50 }); // the step counter continues: step 5
    resumed.logMetrics({ loss: 60 }, { step: 6 });
    await resumed.finish();
    await logger2.shutdown();

    expect([...first.failures, ...second.failures]).toEqual([]);
    const stored = server.getRun('wandb-resume', wandbRunId(run.id))!;
    const rows = server.history(stored);
    expect(rows.map((r) => [r._step, r['runtel/step'], r.loss])).toEqual([
      [0, 0, 0],
      [1, 1, 1],
      [2, 2, 2],
      [3, 3, 3],
      [4, 4, 4],
      [5, 5, 50],
      [6, 6, 60],
    ]);
    expect(historyOffsetsContiguous(server, stored)).toBe(true);
    expect(stored).toMatchObject({ complete: true, exitcode: 0 });
    expect(stored.summary).toMatchObject({ loss: 60, only_before: 1 });
    expect(server.graphql('RunResumeStatus').some((r) => r.variables?.name === stored.name)).toBe(true);
  });

  it('streams and completes again when data arrives after the run completed', async () => {
    const { WandbBackend } = await import('../../src/wandb/WandbBackend.js');
    const backend = new WandbBackend({ baseUrl: server.url, apiKey: API_KEY_40, mode: 'online', flushIntervalMillis: 20 });
    const runId = 'ab'.repeat(16);
    backend.onEvent({ type: 'run_started', runId, name: 'reordered', experiment: 'wandb-late-data', startTime: T0, params: {}, tags: {} });
    backend.onEvent({ type: 'metrics', runId, step: 0, timestamp: T0, values: { x: 1 } });
    backend.onEvent({ type: 'run_finished', runId, endTime: T0 + 10, status: 'success' });
    await backend.forceFlush();
    const stored = server.getRun('wandb-late-data', wandbRunId(runId))!;
    expect(stored.complete).toBe(true);
    backend.onEvent({ type: 'metrics', runId, step: 1, timestamp: T0 + 5, values: { x: 2 } });
    await backend.shutdown();
    expect(server.history(stored).map((r) => r.x)).toEqual([1, 2]);
    expect(server.fileStreams(stored.name).filter((r) => r.text.includes('"complete":true'))).toHaveLength(2);
    expect(backend.stats()).toMatchObject({ sentPoints: 2, undeliveredPoints: 0, queuedPoints: 0 });
  });

  it('puts a root run at the head of its group when its children started first', async () => {
    const { WandbBackend } = await import('../../src/wandb/WandbBackend.js');
    const backend = new WandbBackend({ baseUrl: server.url, apiKey: API_KEY_40, mode: 'online', flushIntervalMillis: 20 });
    const parent = 'cd'.repeat(16);
    const child = 'ef'.repeat(16);
    backend.onEvent({ type: 'run_started', runId: child, parentId: parent, name: 'child', experiment: 'wandb-reorder', startTime: T0, params: {}, tags: {} });
    backend.onEvent({ type: 'run_started', runId: parent, name: 'parent', experiment: 'wandb-reorder', startTime: T0, params: {}, tags: {} });
    backend.onEvent({ type: 'run_finished', runId: child, endTime: T0 + 1, status: 'success' });
    backend.onEvent({ type: 'run_finished', runId: parent, endTime: T0 + 2, status: 'success' });
    await backend.shutdown();
    expect(server.getRun('wandb-reorder', wandbRunId(parent))).toMatchObject({ group: wandbRunId(parent), jobType: 'parent', exitcode: 0 });
    expect(server.getRun('wandb-reorder', wandbRunId(child))).toMatchObject({ group: wandbRunId(parent), jobType: 'child', exitcode: 0 });
  });
});
