// The bad-input table: what each bad input gets. Nothing is half-stored: a call that throws emits nothing.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemoryLogger } from '../../src/index.js';

function fresh() {
  const logger = new InMemoryLogger();
  // Not made the active run: these runs stay open, and the last test needs no active run.
  const run = logger.startRun({ name: 'bad-input', activate: false });
  return { logger, run, eventsBefore: logger.events.length };
}

describe('metric values', () => {
  const notNumbers: Array<[string, unknown, string]> = [
    ['string', '0.5', 'string'],
    ['boolean', true, 'boolean'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['bigint', 5n, 'bigint'],
    ['object', { v: 1 }, 'object'],
  ];
  it.each(notNumbers)('%s → TypeError naming the key', (_label, value, got) => {
    const { logger, run, eventsBefore } = fresh();
    expect(() => run.logMetrics({ loss: value as number })).toThrow(TypeError);
    expect(() => run.logMetrics({ loss: value as number })).toThrow(`metric "loss" must be a number (NaN and ±Infinity allowed), got ${got}`);
    expect(logger.events.length).toBe(eventsBefore);
  });

  it('a bad value among good ones stores none of the call', () => {
    const { logger, run, eventsBefore } = fresh();
    expect(() => run.logMetrics({ a: 1, b: 'x' as unknown as number })).toThrow('metric "b"');
    expect(logger.events.length).toBe(eventsBefore);
  });

  it('NaN, +Infinity, -Infinity and -0 are accepted and preserved', () => {
    const { logger, run } = fresh();
    run.logMetrics({ nan: NaN, inf: Infinity, ninf: -Infinity, negzero: -0 }, { step: 0 });
    const rec = logger.getRun(run.id)!;
    expect(rec.metrics.nan![0]!.value).toBeNaN();
    expect(rec.metrics.inf![0]!.value).toBe(Infinity);
    expect(rec.metrics.ninf![0]!.value).toBe(-Infinity);
    expect(Object.is(rec.metrics.negzero![0]!.value, -0)).toBe(true);
  });
});

describe('keys', () => {
  const rule = "keys are 1-250 characters of letters and digits (any script, as MLflow), '_', '-', '.', ' ', '/' and ':'";
  it.each([
    ['empty', ''],
    ['251 characters', 'k'.repeat(251)],
    ['a forbidden character', 'loss@train'],
    ['a combining accent (MLflow refuses marks: use the composed letter)', 'pe\u0301rte'],
    ['an emoji', 'loss🔥'],
  ])('%s → TypeError naming the key and the rule', (_label, key) => {
    const { run } = fresh();
    expect(() => run.logMetrics({ [key]: 1 })).toThrow(`invalid metric key ${JSON.stringify(key)}: ${rule}`);
    expect(() => run.logParams({ [key]: 1 })).toThrow(`invalid param key ${JSON.stringify(key)}`);
    expect(() => run.setTags({ [key]: 'v' })).toThrow(`invalid tag key ${JSON.stringify(key)}`);
  });

  it.each(['/abs', 'a//b', 'a/../b', './a', 'a/'])('%s → TypeError: must not resolve to another path', (key) => {
    const { run } = fresh();
    expect(() => run.logMetrics({ [key]: 1 })).toThrow("must not contain empty, '.' or '..' segments");
  });

  it('accepts 250 characters and every allowed character', () => {
    const { logger, run } = fresh();
    run.logMetrics({ ['k'.repeat(250)]: 1, 'train/loss: a-b_c.d e': 2 });
    expect(Object.keys(logger.getRun(run.id)!.metrics)).toHaveLength(2);
  });

  it('accepts letters and digits of any script, as MLflow does (250 characters, not UTF-16 units)', () => {
    const { logger, run } = fresh();
    const keys = ['précision', 'val/精度', 'Ключ:1', 'λ_²', '𝔘'.repeat(250)];
    for (const key of keys) run.logMetrics({ [key]: 1 });
    run.logParams({ taux_élevé: 0.1 });
    run.setTags({ équipe: 'ml' });
    const record = logger.getRun(run.id)!;
    expect(Object.keys(record.metrics)).toEqual(keys);
    expect(record.params).toEqual({ taux_élevé: '0.1' });
    expect(record.tags).toEqual({ équipe: 'ml' });
    expect(() => run.logMetrics({ ['𝔘'.repeat(251)]: 1 })).toThrow(rule);
  });
});

describe('params', () => {
  it('a circular config is a clear error', () => {
    const config: Record<string, unknown> = { a: { b: 1 } };
    (config.a as Record<string, unknown>).self = config;
    const logger = new InMemoryLogger();
    expect(() => logger.startRun({ config })).toThrow('config is circular at "a.self"');
    expect(logger.events).toHaveLength(0);
  });

  it('a value longer than 6000 characters → RangeError suggesting logArtifact', () => {
    const { logger, run, eventsBefore } = fresh();
    expect(() => run.logParams({ prompt: 'x'.repeat(6001) })).toThrow('param "prompt" is 6001 characters; the limit is 6000');
    expect(logger.events.length).toBe(eventsBefore);
    run.logParams({ prompt: 'x'.repeat(6000) });
    expect(logger.getRun(run.id)!.params.prompt).toHaveLength(6000);
  });

  it('re-logging a key with a new value names old and new values; the same value is a no-op', () => {
    const { logger, run } = fresh();
    run.logParams({ lr: 0.1 });
    const count = logger.events.length;
    run.logParams({ lr: 0.1 });
    expect(logger.events.length).toBe(count);
    expect(() => run.logParams({ lr: 0.2, other: 1 })).toThrow('param "lr" is already "0.1"; params are write-once, so it cannot become "0.2"');
    expect(logger.getRun(run.id)!.params).toEqual({ lr: '0.1' });
  });

  it('functions and symbols are not params', () => {
    const { run } = fresh();
    expect(() => run.logParams({ f: () => 1 })).toThrow('param "f" is a function');
    expect(() => run.logParams({ s: Symbol('x') })).toThrow('param "s" is a symbol');
  });
});

describe('steps and timestamps', () => {
  it.each([[-1], [1.5], [2 ** 53], [NaN], [Infinity]])('step %s → RangeError', (step) => {
    const { run } = fresh();
    expect(() => run.logMetrics({ a: 1 }, { step })).toThrow(RangeError);
    expect(() => run.logMetrics({ a: 1 }, { step })).toThrow('step must be a non-negative safe integer');
  });

  it('step that is not a number → TypeError', () => {
    const { run } = fresh();
    expect(() => run.logMetrics({ a: 1 }, { step: '3' as unknown as number })).toThrow('step must be a number, got string');
  });

  it.each([[-1], [NaN], [Infinity], [new Date('1969-12-31T23:59:59Z')], [new Date('invalid')]])('timestamp %s → RangeError', (timestamp) => {
    const { run } = fresh();
    expect(() => run.logMetrics({ a: 1 }, { timestamp })).toThrow('timestamp must be finite milliseconds since 1970-01-01');
  });

  it.each([[Date.now() / 1000], [Math.floor(Date.now() / 1000)], [1e8], [1e11 - 1], [new Date(Date.now() / 1000)]])(
    'timestamp %s (seconds, not milliseconds) → RangeError with the hint; nothing stored',
    (timestamp) => {
      const { logger, run, eventsBefore } = fresh();
      expect(() => run.logMetrics({ a: 1 }, { timestamp })).toThrow(RangeError);
      expect(() => run.logMetrics({ a: 1 }, { timestamp })).toThrow(/looks like seconds since 1970 \(as milliseconds it is 197\d-.*\): pass milliseconds, e\.g\. Date\.now\(\) rather than Date\.now\(\) \/ 1000/);
      expect(logger.events.length).toBe(eventsBefore);
    },
  );

  it('milliseconds are fine either side of the seconds range (small synthetic ones, and real dates)', () => {
    const { logger, run } = fresh();
    for (const timestamp of [0, 1000, 1e8 - 1, 1e11, Date.now(), new Date()]) run.logMetrics({ a: 1 }, { timestamp });
    expect(logger.getRun(run.id)!.metrics.a).toHaveLength(6);
  });
});

describe('empty metrics', () => {
  it('logMetrics({}) is a no-op: nothing stored, the step does not advance; its options are still checked', () => {
    const { logger, run, eventsBefore } = fresh();
    run.logMetrics({});
    run.logMetrics({}, { step: 7 });
    expect(logger.events.length).toBe(eventsBefore);
    run.logMetrics({ a: 1 });
    expect(logger.getRun(run.id)!.metrics.a![0]!.step).toBe(0);
    expect(() => run.logMetrics({}, { step: -1 })).toThrow(RangeError);
    expect(() => run.logMetrics({}, { timestamp: Date.now() / 1000 })).toThrow(/looks like seconds/);
  });
});

describe('lifecycle', () => {
  it('logging after finish is an error; finish twice is a no-op returning the same promise', async () => {
    const { logger, run } = fresh();
    const first = run.finish();
    expect(run.finish('failed')).toBe(first);
    await first;
    expect(run.status).toBe('success');
    expect(logger.events.filter((e) => e.type === 'run_finished')).toHaveLength(1);
    for (const call of [() => run.logMetrics({ a: 1 }), () => run.logParams({ a: 1 }), () => run.setTags({ a: 'b' }), () => run.logModel({})]) {
      expect(call).toThrow('is success: ');
    }
    expect(() => run.logMetrics({ a: 1 })).toThrow('logMetrics after finish is not allowed');
  });

  it('an unknown finish status is a TypeError', () => {
    const { run } = fresh();
    expect(() => run.finish('done' as 'success')).toThrow("finish status must be 'success', 'failed', 'killed' or 'crashed'");
    expect(run.status).toBe('running');
  });

  it('an artifact path that does not exist is an error', () => {
    const { logger, run, eventsBefore } = fresh();
    expect(() => run.logArtifact('/nonexistent/file.bin')).toThrow('artifact path "/nonexistent/file.bin" does not exist');
    expect(logger.events.length).toBe(eventsBefore);
  });

  it('artifact names must be relative paths', () => {
    const { run } = fresh();
    const dir = mkdtempSync(join(tmpdir(), 'runtel-art-'));
    writeFileSync(join(dir, 'a.txt'), 'a');
    expect(() => run.logArtifact(join(dir, 'a.txt'), { name: '../escape.txt' })).toThrow('invalid artifact name "../escape.txt"');
    expect(() => run.logArtifact(join(dir, 'a.txt'), { name: '/abs.txt' })).toThrow('invalid artifact name');
  });

  it('a model that is not JSON-serialisable is a TypeError', () => {
    const { run } = fresh();
    expect(() => run.logModel({ big: 1n })).toThrow('model "model" is not JSON-serialisable');
  });

  it('tags must be strings of at most 8000 characters', () => {
    const { run } = fresh();
    expect(() => run.setTags({ n: 1 as unknown as string })).toThrow('tag "n" must be a string, got number');
    expect(() => run.setTags({ long: 'x'.repeat(8001) })).toThrow('tag "long" is 8001 characters; the limit is 8000');
  });

  it('nested without an active run or parent is an error', () => {
    const logger = new InMemoryLogger();
    expect(() => logger.startRun({ nested: true })).toThrow('needs an active run');
  });

  it('empty experiment or run name is an error', () => {
    const logger = new InMemoryLogger();
    expect(() => logger.startRun({ experiment: ' ' })).toThrow('experiment must be a non-empty string');
    expect(() => logger.startRun({ name: '' })).toThrow('run name must be a non-empty string');
  });
});
