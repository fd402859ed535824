import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompositeLogger, InMemoryLogger, JsonlLogger, readRun, listRuns, findRun, withRun } from '../../src/index.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'runtel-jsonl-'));
}

describe('JsonlLogger', () => {
  it('round trip: the run read back equals the run as logged, NaN/±Inf/-0 included', async () => {
    const dir = tempDir();
    const memory = new InMemoryLogger();
    const jsonl = new JsonlLogger({ dir });
    const logger = new CompositeLogger([memory, jsonl]);
    const src = join(tempDir(), 'data');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'a.bin'), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(src, 'sub', 'b.txt'), 'hello');
    let id = '';
    await withRun(logger, { name: 'rt', experiment: 'exp', config: { lr: 0.1, layers: [3, 4] }, tags: { team: 'ml' } }, async (run) => {
      id = run.id;
      run.logMetrics({ loss: 1.5, weird: NaN }, { step: 0, timestamp: 1000 });
      run.logMetrics({ loss: Infinity, weird: -Infinity }, { step: 2, timestamp: 2000.5 });
      run.logMetrics({ loss: -0, weird: 1e-300 }, { step: 1, timestamp: 3000 });
      run.logParams({ batch: 32 });
      run.setTags({ stage: 'dev' });
      run.setTags({ stage: 'prod' });
      run.logArtifact(join(src, 'a.bin'));
      run.logArtifact(src, { name: 'dataset' });
      run.logModel({ w: [1, 2] }, { name: 'm' });
      await withRun(logger, { name: 'child', nested: true }, () => {
        throw new Error('child failed');
      }).catch(() => undefined);
    });
    const stored = readRun(join(dir, id))!;
    const expected = structuredClone(memory.getRun(id)!);
    // Artifact paths point into the run folder; everything else is identical.
    for (const a of expected.artifacts) a.path = join(dir, id, 'artifacts', a.name);
    expect(stored.record).toEqual(expected);
    expect(Object.is(stored.record.metrics.loss![2]!.value, -0)).toBe(true);
    expect(stored.record.metrics.weird!.map((s) => s.value)).toEqual([NaN, -Infinity, 1e-300]);
    expect(stored.events).toEqual(memory.events.filter((e) => e.runId === id));
    expect(readFileSync(join(dir, id, 'artifacts', 'a.bin'))).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(readFileSync(join(dir, id, 'artifacts', 'dataset', 'sub', 'b.txt'), 'utf8')).toBe('hello');
    expect(JSON.parse(readFileSync(join(dir, id, 'artifacts', 'models', 'm', 'model.json'), 'utf8'))).toEqual({ w: [1, 2] });
    expect(JSON.parse(readFileSync(join(dir, id, 'artifacts', 'models', 'm', 'runtel-model.json'), 'utf8'))).toMatchObject({ name: 'm', format: 'json', runId: id });
    const child = listRuns(dir).find((r) => r.record.name === 'child')!;
    expect(child.record).toMatchObject({ status: 'failed', parentId: id, error: { type: 'Error', message: 'child failed' } });
  });

  it('non-finite values are written as strings a reader can tell apart', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir });
    const run = logger.startRun();
    run.logMetrics({ a: NaN, b: Infinity, c: -Infinity, d: 0.1 }, { step: 0, timestamp: 5 });
    await run.finish();
    const lines = readFileSync(join(dir, run.id, 'events.jsonl'), 'utf8').trim().split('\n');
    expect(lines[1]).toBe(`{"type":"metrics","step":0,"timestamp":5,"values":{"a":"NaN","b":"Infinity","c":"-Infinity","d":0.1}}`);
  });

  it('batches writes: nothing is written per point, everything after a flush', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir, flushIntervalMillis: 60_000 });
    const run = logger.startRun();
    for (let step = 0; step < 1000; step++) run.logMetrics({ loss: step }, { step });
    await new Promise((r) => setTimeout(r, 20));
    const file = join(dir, run.id, 'events.jsonl');
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '').toBe('');
    await logger.forceFlush();
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1001);
    await run.finish();
  });

  it('writes a large buffer without waiting for the interval', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir, flushIntervalMillis: 60_000, maxBufferChars: 10_000 });
    const run = logger.startRun();
    for (let step = 0; step < 1000; step++) run.logMetrics({ loss: step }, { step });
    await new Promise((r) => setTimeout(r, 100));
    const lines = readFileSync(join(dir, run.id, 'events.jsonl'), 'utf8').trim().split('\n').length;
    expect(lines).toBeGreaterThan(900);
    await run.finish();
  });

  it('resumes a run from the store in a new logger, continuing its step counter', async () => {
    const dir = tempDir();
    const first = new JsonlLogger({ dir });
    const run = first.startRun({ name: 'long', config: { lr: 0.5 } });
    run.logMetrics({ loss: 1 }, { step: 41 });
    await run.finish('killed');
    await first.shutdown();

    const second = new JsonlLogger({ dir });
    const resumed = second.startRun({ runId: run.id });
    expect(resumed.name).toBe('long');
    resumed.logMetrics({ loss: 0.5 });
    expect(() => resumed.logParams({ lr: 0.6 })).toThrow('already "0.5"');
    await resumed.finish();
    const stored = readRun(join(dir, run.id))!;
    expect(stored.record.status).toBe('success');
    expect(stored.record.metrics.loss!.map((s) => s.step)).toEqual([41, 42]);
  });

  it('a last line cut short by a crash is skipped and counted; corruption elsewhere is an error', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir });
    const run = logger.startRun({ name: 'crashy' });
    run.logMetrics({ a: 1 });
    await logger.forceFlush();
    const file = join(dir, run.id, 'events.jsonl');
    appendFileSync(file, '{"type":"metrics","runId":"');
    const stored = readRun(join(dir, run.id))!;
    expect(stored.truncatedLines).toBe(1);
    expect(stored.record.metrics.a).toHaveLength(1);
    writeFileSync(file, readFileSync(file, 'utf8').replace('"type":"metrics"', '"type":metrics'));
    expect(() => readRun(join(dir, run.id))).toThrow('events.jsonl:2');
    await run.finish();
  });

  it('finds runs by id, id prefix and name', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir });
    const a = logger.startRun({ name: 'alpha' });
    await a.finish();
    expect(findRun(dir, a.id)!.record.id).toBe(a.id);
    expect(findRun(dir, a.id.slice(0, 6))!.record.id).toBe(a.id);
    expect(findRun(dir, 'alpha')!.record.id).toBe(a.id);
    expect(findRun(dir, 'nope')).toBeUndefined();
  });

  it('defaults its folder to RUNTEL_DIR', () => {
    const dir = tempDir();
    process.env.RUNTEL_DIR = dir;
    try {
      expect(new JsonlLogger().dir).toBe(dir);
    } finally {
      delete process.env.RUNTEL_DIR;
    }
  });

  it('a write failure is reported, not thrown, and the lines are kept', async () => {
    const dir = tempDir();
    const blocked = join(dir, 'blocked');
    writeFileSync(blocked, 'a file where the store folder should be');
    const failures: unknown[] = [];
    const logger = new JsonlLogger({ dir: blocked, onError: (f) => failures.push(f.error) });
    const run = logger.startRun();
    run.logMetrics({ a: 1 });
    await run.finish();
    expect(failures.length).toBeGreaterThan(0);
    expect(String(failures[0])).toMatch(/EEXIST|ENOTDIR/);
  });
});

describe('JsonlLogger after a crash', () => {
  it('resumes a run whose last line was cut short, and appends on a fresh line', async () => {
    const dir = tempDir();
    const first = new JsonlLogger({ dir });
    const run = first.startRun({ name: 'crashed' });
    run.logMetrics({ loss: 1 }, { step: 3 });
    await first.forceFlush();
    appendFileSync(join(dir, run.id, 'events.jsonl'), '{"type":"metr');
    const second = new JsonlLogger({ dir });
    const resumed = second.startRun({ runId: run.id });
    resumed.logMetrics({ loss: 0.5 });
    await resumed.finish();
    const stored = readRun(join(dir, run.id))!;
    expect(stored.truncatedLines).toBe(0);
    expect(stored.record.metrics.loss!.map((s) => s.step)).toEqual([3, 4]);
    expect(stored.record.status).toBe('success');
  });
});

describe('model staging', () => {
  it('the staging copy of a logged model is removed once the backends have it', async () => {
    const dir = tempDir();
    const logger = new JsonlLogger({ dir });
    const run = logger.startRun();
    run.logModel({ w: 1 }, { name: 'm' });
    await logger.forceFlush();
    const staged = readRun(join(dir, run.id))!.events.find((e) => e.type === 'artifact')!;
    expect(staged.type === 'artifact' && existsSync(staged.path)).toBe(true);
    await run.finish();
    expect(staged.type === 'artifact' && existsSync(staged.path)).toBe(false);
    expect(existsSync(join(dir, run.id, 'artifacts', 'models', 'm', 'model.json'))).toBe(true);
    // With an InMemory backend (tests read its artifact paths) the staging copy stays.
    const memory = new InMemoryLogger();
    const kept = memory.startRun();
    kept.logModel({ w: 2 });
    await kept.finish();
    expect(existsSync(memory.getRun(kept.id)!.artifacts[0]!.path)).toBe(true);
  });
});
