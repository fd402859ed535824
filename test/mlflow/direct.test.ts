// MlflowLogger against a real MLflow server, read back through REST and MLflow's Python client.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { basename, join } from 'node:path';
import { CompositeLogger, InMemoryLogger, JsonlLogger, MlflowLogger, readRun, withRun } from '../../src/index.js';
import type { BackendFailure } from '../../src/index.js';
import { MLFLOW_STORES, pyValue, readBackWithPython, runsByRuntelId, useMlflowServers, waitFor } from './helpers.js';
import type { MlflowStore } from './helpers.js';

// One server per store. What depends on the store (values kept, SQL searches, writes) runs on both;
// the rest, whose outcome is decided before a request reaches the store, on SQLite.
const servers = useMlflowServers();

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'runtel-mlflow-'));
}

/** What MLflow 3.17.2 returns for special values, by store (the same on both: its SQL store replaces ±Infinity before the database sees it). */
const STORED: Record<MlflowStore, { rest: unknown[]; python: unknown[] }> = {
  sqlite: {
    rest: [1.5, 'NaN', Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324],
    python: [1.5, 'NaN', Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324],
  },
  postgres: {
    rest: [1.5, 'NaN', Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324],
    python: [1.5, 'NaN', Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324],
  },
};

describe.each(MLFLOW_STORES)('MlflowLogger on MLflow with a %s store', (store) => {
  const mlflow = servers[store];

  it('NaN, ±Infinity and the extremes: what the store gives back through REST and through the Python client', async () => {
    const values = [1.5, NaN, Infinity, -Infinity, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324];
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url });
    const run = logger.startRun({ name: 'specials', experiment: 'specials' });
    values.forEach((v, step) => run.logMetrics({ v }, { step, timestamp: 1_700_000_000_000 + step }));
    await run.finish();
    await logger.shutdown();
    const mlflowRun = (await runsByRuntelId(mlflow.client, 'specials')).get(run.id)!;
    const raw = (await (await fetch(`${mlflow.server.url}/api/2.0/mlflow/metrics/get-history?run_id=${mlflowRun.info.run_id}&metric_key=v`)).json()) as { metrics: Array<{ step: number; value: unknown }> };
    const rest = raw.metrics.sort((a, b) => a.step - b.step).map((m) => m.value);
    const [py] = await readBackWithPython(mlflow.server.url, 'specials');
    const python = py!.metrics.v!.map(([, value]) => value);
    expect({ rest, python }).toEqual(STORED[store]);
    // runtel's client reads the stand-ins back as ±Infinity (so a logged ±Number.MAX_VALUE comes back as ±Infinity too).
    const decoded = (await mlflow.client.getMetricHistory(mlflowRun.info.run_id, 'v')).sort((a, b) => a.step - b.step).map((m) => m.value);
    expect(decoded).toEqual([1.5, NaN, Infinity, -Infinity, Infinity, -Infinity, 5e-324]);
  });

  it('params, every point (NaN/±Inf), tags, status, nesting and artifacts arrive exactly, by REST and by the Python client', async () => {
    const experiment = 'direct-roundtrip';
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, new MlflowLogger({ trackingUri: mlflow.server.url })]);
    const src = tempDir();
    mkdirSync(join(src, 'data', 'sub'), { recursive: true });
    const blob = Buffer.alloc(3 * 1024 * 1024 + 7, 0);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 31 + 7) % 251;
    writeFileSync(join(src, 'data', 'big.bin'), blob);
    writeFileSync(join(src, 'data', 'sub', 'notes.txt'), 'hello mlflow');
    const specials = [NaN, Infinity, -Infinity];
    let parentId = '';
    await withRun(logger, { name: 'parent', experiment, config: { lr: 0.1, model: { layers: [64, 32], act: 'relu' } }, tags: { team: 'ml' } }, async (run) => {
      parentId = run.id;
      for (let step = 0; step < 300; step++) {
        run.logMetrics({ loss: 1 / (step + 1), odd: specials[step % 3]! }, { step, timestamp: 1_700_000_000_000 + step });
      }
      run.logMetrics({ late: 5 }, { step: 7 });
      run.logMetrics({ late: 3 }, { step: 2 });
      run.setTags({ stage: 'dev' });
      run.setTags({ stage: 'prod' });
      run.logArtifact(join(src, 'data'), { name: 'dataset' });
      run.logModel({ weights: [0.5, -1.25] }, { name: 'tiny' });
      await withRun(logger, { name: 'child', experiment, nested: true }, () => {
        throw new Error('child exploded');
      }).catch(() => undefined);
    });
    await logger.shutdown();

    const byId = await runsByRuntelId(mlflow.client, experiment);
    const parent = byId.get(parentId)!;
    const childRecord = memory.runs.find((r) => r.name === 'child')!;
    const child = byId.get(childRecord.id)!;
    expect(parent.info.status).toBe('FINISHED');
    expect(child.info.status).toBe('FAILED');
    const tags = Object.fromEntries(parent.data.tags!.map((t) => [t.key, t.value]));
    expect(tags).toMatchObject({ team: 'ml', stage: 'prod', 'mlflow.runName': 'parent', 'runtel.run_id': parentId });
    // Created by the training process itself: its user and script, as MLflow's own client tags them.
    expect(tags).toMatchObject({ 'mlflow.user': userInfo().username, 'mlflow.source.name': basename(process.argv[1] ?? 'node'), 'mlflow.source.type': 'LOCAL' });
    expect(Object.fromEntries(child.data.tags!.map((t) => [t.key, t.value]))['mlflow.parentRunId']).toBe(parent.info.run_id);
    const loss = await mlflow.client.getMetricHistory(parent.info.run_id, 'loss');
    expect(loss).toHaveLength(300);

    const py = await readBackWithPython(mlflow.server.url, experiment);
    const pyParent = py.find((r) => r.tags['runtel.run_id'] === parentId)!;
    const expected = memory.getRun(parentId)!;
    expect(pyParent.params).toEqual(expected.params);
    expect(pyParent.status).toBe('FINISHED');
    for (const [key, samples] of Object.entries(expected.metrics)) {
      const want = [...samples].sort((a, b) => a.step - b.step || a.timestamp - b.timestamp).map((s) => [s.step, s.value, Math.floor(s.timestamp)]);
      const got = pyParent.metrics[key]!.map(([step, value, ts]) => [step, pyValue(value), ts]);
      expect(got, key).toEqual(want);
    }
    expect(Buffer.from(pyParent.artifacts['dataset/big.bin']!, 'hex').equals(blob)).toBe(true);
    expect(Buffer.from(pyParent.artifacts['dataset/sub/notes.txt']!, 'hex').toString()).toBe('hello mlflow');
    expect(JSON.parse(Buffer.from(pyParent.artifacts['models/tiny/model.json']!, 'hex').toString())).toEqual({ weights: [0.5, -1.25] });
    expect(JSON.parse(Buffer.from(pyParent.artifacts['models/tiny/runtel-model.json']!, 'hex').toString())).toMatchObject({ name: 'tiny', format: 'json' });
    const pyChild = py.find((r) => r.tags['runtel.run_id'] === childRecord.id)!;
    expect(pyChild.status).toBe('FAILED');
    expect(pyChild.tags['mlflow.parentRunId']).toBe(pyParent.run_id);
  });

  it('a run is RUNNING in MLflow from startRun on, and a point is visible within about 2 s', async () => {
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url });
    const run = logger.startRun({ name: 'live', experiment: 'live' });
    const runs = await waitFor('the live run', async () => (await runsByRuntelId(mlflow.client, 'live')).get(run.id));
    expect(runs.info.status).toBe('RUNNING');
    const t0 = Date.now();
    run.logMetrics({ loss: 0.25 }, { step: 1 });
    const history = await waitFor('the point', async () => {
      const h = await mlflow.client.getMetricHistory(runs.info.run_id, 'loss');
      return h.length > 0 ? h : undefined;
    });
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(history[0]).toMatchObject({ step: 1, value: 0.25 });
    await run.finish('killed');
    expect((await mlflow.client.getRun(runs.info.run_id)).info.status).toBe('KILLED');
    await logger.shutdown();
  });

  it('resumes an MLflow run by its runtel id and by its MLflow run id: RUNNING again, steps continue', async () => {
    const first = new MlflowLogger({ trackingUri: mlflow.server.url });
    const run = first.startRun({ name: 'resumable', experiment: 'resume', config: { lr: 0.1 } });
    run.logMetrics({ loss: 1 }, { step: 9 });
    await run.finish('killed');
    await first.shutdown();
    const mlflowId = (await runsByRuntelId(mlflow.client, 'resume')).get(run.id)!.info.run_id;

    const second = new MlflowLogger({ trackingUri: mlflow.server.url });
    const resumed = await second.resumeRun(run.id, { experiment: 'resume' });
    expect(resumed.id).toBe(run.id);
    expect(() => resumed.logParams({ lr: 0.2 })).toThrow('already "0.1"');
    resumed.logMetrics({ loss: 0.5 });
    await second.forceFlush();
    expect((await mlflow.client.getRun(mlflowId)).info.status).toBe('RUNNING');
    await resumed.finish();
    await second.shutdown();
    expect((await mlflow.client.getMetricHistory(mlflowId, 'loss')).map((m) => m.step).sort((a, b) => a - b)).toEqual([9, 10]);

    const third = new MlflowLogger({ trackingUri: mlflow.server.url });
    const byMlflowId = await third.resumeRun(mlflowId);
    expect(byMlflowId.id).toBe(run.id);
    byMlflowId.logMetrics({ loss: 0.25 });
    await byMlflowId.finish();
    await third.shutdown();
    expect((await mlflow.client.getMetricHistory(mlflowId, 'loss')).map((m) => m.step).sort((a, b) => a - b)).toEqual([9, 10, 11]);
    const runs = await runsByRuntelId(mlflow.client, 'resume');
    expect(runs.size).toBe(1);
    await expect(new MlflowLogger({ trackingUri: mlflow.server.url }).resumeRun('0'.repeat(32))).rejects.toThrow('MLflow has no such run');
  });
});

describe('MlflowLogger (checks made before the store is reached: on SQLite)', () => {
  const mlflow = servers.sqlite;

  it('10,000 params are chunked within the batch limits', async () => {
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url, flushTimeoutMillis: 120_000 });
    const config: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) config[`p${i}`] = i;
    const run = logger.startRun({ name: 'many-params', experiment: 'params', config });
    await run.finish();
    await logger.shutdown();
    const stored = (await runsByRuntelId(mlflow.client, 'params')).get(run.id)!;
    expect(stored.data.params).toHaveLength(10_000);
    expect(Object.fromEntries(stored.data.params!.map((p) => [p.key, p.value])).p9999).toBe('9999');
    expect(logger.failureCounts()).toEqual({});
  });

  it('bad input: a 300-character key throws at the call; a 7000-character param value is a RangeError at the call', () => {
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url });
    const run = logger.startRun({ name: 'bad', experiment: 'bad' });
    expect(() => run.logMetrics({ ['k'.repeat(300)]: 1 })).toThrow('invalid metric key');
    expect(() => run.logParams({ long: 'x'.repeat(7000) })).toThrow('param "long" is 7000 characters; the limit is 6000');
    return run.finish().then(() => logger.shutdown());
  });

  it('stricter server limits: values are truncated to the configured limit and reported once', async () => {
    const failures: BackendFailure[] = [];
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url, maxParamValueLength: 250, onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'strict', experiment: 'strict', config: { a: 'y'.repeat(400), b: 'z'.repeat(300) } });
    await run.finish();
    await logger.shutdown();
    const stored = (await runsByRuntelId(mlflow.client, 'strict')).get(run.id)!;
    expect(Object.fromEntries(stored.data.params!.map((p) => [p.key, p.value]))).toEqual({ a: 'y'.repeat(250), b: 'z'.repeat(250) });
    expect(failures.filter((f) => String(f.error).includes('truncated'))).toHaveLength(1);
  });

  it('a run deleted in MLflow meanwhile is reported once; the JSONL store keeps the data', async () => {
    const failures: BackendFailure[] = [];
    const dir = tempDir();
    const logger = new CompositeLogger([new JsonlLogger({ dir }), new MlflowLogger({ trackingUri: mlflow.server.url })], { onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'doomed', experiment: 'deleted' });
    run.logMetrics({ loss: 1 }, { step: 0 });
    await logger.forceFlush();
    const mlflowRun = (await runsByRuntelId(mlflow.client, 'deleted')).get(run.id)!;
    await fetch(`${mlflow.server.url}/api/2.0/mlflow/runs/delete`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run_id: mlflowRun.info.run_id }) });
    for (let step = 1; step <= 50; step++) {
      run.logMetrics({ loss: 1 / step }, { step });
      if (step % 10 === 0) await logger.forceFlush();
    }
    await run.finish();
    await logger.shutdown();
    const mlflowFailures = failures.filter((f) => f.backend === 'mlflow');
    expect(mlflowFailures).toHaveLength(1);
    expect(String(mlflowFailures[0]!.error)).toMatch(/INVALID_PARAMETER_VALUE|RESOURCE_DOES_NOT_EXIST/);
    expect(readRun(join(dir, run.id))!.record.metrics.loss).toHaveLength(51);
  });

  it('an experiment runtel creates is marked model training (mlflow.experimentKind); an existing one, with or without a kind, is left alone', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${mlflow.server.url}/api/2.0/mlflow/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await post('experiments/create', { name: 'kind-genai', tags: [{ key: 'mlflow.experimentKind', value: 'genai_development' }] });
    await post('experiments/create', { name: 'kind-none' });
    const logger = new MlflowLogger({ trackingUri: mlflow.server.url });
    for (const experiment of ['kind-new', 'kind-genai', 'kind-none']) await logger.startRun({ name: experiment, experiment }).finish();
    await logger.shutdown();
    const kindOf = async (name: string) => {
      const res = (await (await fetch(`${mlflow.server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${name}`)).json()) as { experiment: { tags?: Array<{ key: string; value: string }> } };
      return res.experiment.tags?.find((t) => t.key === 'mlflow.experimentKind')?.value;
    };
    expect(await kindOf('kind-new')).toBe('custom_model_development');
    expect(await kindOf('kind-genai')).toBe('genai_development');
    expect(await kindOf('kind-none')).toBeUndefined();
    // And each run went to its experiment (none was created twice).
    for (const experiment of ['kind-new', 'kind-genai', 'kind-none']) expect((await runsByRuntelId(mlflow.client, experiment)).size).toBe(1);
  });
});
