// The pure W&B mappings: run ids, config values, extended JSON and the history rows.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { flattenParams } from '../../src/core/params.js';
import { parseExtendedJson, toExtendedJson } from '../../src/wandb/extendedJson.js';
import { RunHistory, parseParamValue, unflattenParams, wandbRunId } from '../../src/wandb/history.js';

describe('wandbRunId', () => {
  it('derives a short lowercase alphanumeric id from the runtel id, deterministically', () => {
    const id = 'd8ddc9838fd56af3af3a1d54dc2c4193';
    expect(wandbRunId(id)).toBe(BigInt('0xd8ddc9838fd56af3').toString(36).padStart(13, '0'));
    expect(wandbRunId(id)).toMatch(/^[0-9a-z]{13}$/);
    expect(wandbRunId(id)).toBe(wandbRunId(id));
    expect(wandbRunId('0'.repeat(32))).toBe('0'.repeat(13));
    expect(wandbRunId('f'.repeat(32))).toBe('3w5e11264sgsf');
    expect(wandbRunId('not-hex-run-id')).toMatch(/^[0-9a-z]{13}$/);
    expect(wandbRunId('not-hex-run-id')).not.toBe(wandbRunId('not-hex-run-id2'));
    const ids = new Set(Array.from({ length: 1000 }, () => wandbRunId(randomBytes(16).toString('hex'))));
    expect(ids.size).toBe(1000);
  });
});

describe('config values', () => {
  it('types param strings back only when the string is their exact form', () => {
    expect(parseParamValue('0.001')).toBe(0.001);
    expect(parseParamValue('-3')).toBe(-3);
    expect(parseParamValue('1e+21')).toBe(1e21);
    expect(parseParamValue('1.0')).toBe('1.0');
    expect(parseParamValue('007')).toBe('007');
    expect(parseParamValue('NaN')).toBe('NaN');
    expect(parseParamValue('Infinity')).toBe('Infinity');
    expect(parseParamValue('true')).toBe(true);
    expect(parseParamValue('False')).toBe('False');
    expect(parseParamValue('null')).toBe(null);
    expect(parseParamValue('[1,2,"a"]')).toEqual([1, 2, 'a']);
    expect(parseParamValue('[1, 2]')).toBe('[1, 2]');
    expect(parseParamValue('{}')).toEqual({});
    expect(parseParamValue('relu')).toBe('relu');
    expect(parseParamValue('')).toBe('');
  });

  it('unflattens runtel params back into the nested config they came from', () => {
    const config = { lr: 0.01, model: { layers: 3, act: 'relu', dims: [8, 4], opt: { name: 'adam', beta: 0.9 } }, tags: [], empty: {} };
    expect(unflattenParams(flattenParams(config))).toEqual(config);
    expect(unflattenParams(flattenParams(config), false)).toEqual({ lr: '0.01', model: { layers: '3', act: 'relu', dims: '[8,4]', opt: { name: 'adam', beta: '0.9' } }, tags: '[]', empty: '{}' });
  });

  it('keeps a key flat where it is also a prefix of another key', () => {
    expect(unflattenParams({ a: '1', 'a.b': '2', 'a.b.c': '3', 'x.y': '4' })).toEqual({ a: 1, 'a.b': 2, 'a.b.c': 3, x: { y: 4 } });
    expect(unflattenParams({ 'm.a': '1', m: 'x', 'm.a.b': '2' })).toEqual({ m: 'x', 'm.a': 1, 'm.a.b': 2 });
    expect(unflattenParams({ 'n.a': '1', 'n.a.b': '2' })).toEqual({ n: { a: 1, 'a.b': 2 } });
  });
});

describe('extended JSON', () => {
  it('writes NaN and ±Infinity as bare tokens, and reads them back', () => {
    const value = { a: NaN, b: Infinity, c: -Infinity, d: 1.5, e: 'NaN', f: [NaN, 1], g: { h: -Infinity }, i: null, j: true };
    const text = toExtendedJson(value);
    expect(text).toBe('{"a":NaN,"b":Infinity,"c":-Infinity,"d":1.5,"e":"NaN","f":[NaN,1],"g":{"h":-Infinity},"i":null,"j":true}');
    expect(JSON.stringify(value)).toContain('"a":null');
    const back = parseExtendedJson(text) as Record<string, unknown>;
    expect(back.a).toBeNaN();
    expect(back).toMatchObject({ b: Infinity, c: -Infinity, d: 1.5, e: 'NaN', g: { h: -Infinity }, i: null, j: true });
    expect(parseExtendedJson('{"s":"Infinity \\" NaN"}')).toEqual({ s: 'Infinity " NaN' });
  });
});

describe('RunHistory', () => {
  const metrics = (step: number, values: Record<string, number>, timestamp = 1000 + step) => ({ type: 'metrics' as const, runId: 'r', step, timestamp, values });

  it('closes a row when a larger step arrives, and the open row at forceFlush', () => {
    const h = new RunHistory({ startTime: 0 });
    h.add(metrics(0, { a: 1 }));
    h.add(metrics(0, { b: 2 }));
    h.encode();
    expect(h.lines).toHaveLength(0); // step 0 is still open
    h.add(metrics(1, { a: 3 }));
    h.encode();
    expect(h.lines.map((l) => l.line)).toEqual(['{"_step":0,"_runtime":1,"_timestamp":1,"runtel/step":0,"a":1,"b":2}']);
    h.closeAll();
    h.encode();
    expect(h.lines.map((l) => [l.index, l.points])).toEqual([
      [0, 2],
      [1, 1],
    ]);
  });

  it('gives late rows the next free `_step` after the rows that keep their own', () => {
    const h = new RunHistory({ startTime: 0 });
    h.add(metrics(5, { a: 1 }));
    h.closeAll();
    h.encode(); // `_step` 5 written
    h.add(metrics(2, { late: 1 }));
    h.add(metrics(6, { a: 2 }));
    h.add(metrics(8, { a: 3 }));
    h.closeAll();
    h.encode();
    const steps = h.lines.map((l) => JSON.parse(l.line) as Record<string, number>).map((r) => [r._step, r['runtel/step']]);
    expect(steps).toEqual([
      [5, 5],
      [6, 6],
      [8, 8],
      [9, 2],
    ]);
    expect(h.remappedRows).toBe(1);
  });

  it('skips the lines a replay finds on the server, but numbers them the same', () => {
    const build = (skip: number) => {
      const h = new RunHistory({ startTime: 0 });
      h.skipBelow = skip;
      for (let s = 0; s < 5; s++) h.add(metrics(s, { a: s }));
      h.add(metrics(1, { late: 1 }));
      h.closeAll();
      h.encode();
      return h;
    };
    const full = build(0);
    const replay = build(4);
    expect(replay.lines).toEqual(full.lines.slice(4));
    expect(replay.skippedPoints).toBe(4);
  });

  it('summarises each key by its largest step, then latest timestamp; seeded keys stay until replaced', () => {
    const h = new RunHistory({ startTime: 0 });
    h.seedSummary({ old: 1, loss: 99, _step: 3 });
    h.add(metrics(3, { loss: 1 }, 10));
    h.add(metrics(1, { loss: 5 }, 20));
    h.add(metrics(3, { loss: 2 }, 15));
    const summary = JSON.parse(h.summaryLine(5000)) as Record<string, unknown>;
    expect(summary).toMatchObject({ old: 1, loss: 2, _runtime: 5, _timestamp: 0.02, _wandb: { runtime: 5 } });
    expect(summary).not.toHaveProperty('_step'); // nothing written yet
  });

  it('renames metric keys that collide with W&B reserved keys or the step key', () => {
    const h = new RunHistory({ startTime: 0 });
    h.add(metrics(0, { _step: 1, 'runtel/step': 2, _wandb: 3 }));
    h.closeAll();
    h.encode();
    expect(JSON.parse(h.lines[0]!.line)).toMatchObject({ _step: 0, 'runtel/step': 0, 'metric/_step': 1, 'metric/runtel/step': 2, 'metric/_wandb': 3 });
  });
});
