import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withRun } from '../../src/core/context.js';
import { fromMetricAttributeValue, toMetricAttributeValue } from '../../src/otel/conventions.js';
import * as conventions from '../../src/otel/conventions.js';
import type { Pipelines } from './helpers.js';
import { millis, pipelines, sameSpan, spanByName } from './helpers.js';

let otel: Pipelines | undefined;
afterEach(async () => {
  await otel?.shutdown();
  otel = undefined;
});

describe('OtelLogger log records', () => {
  it('emits one ml.metric record per point, in the run span, with its timestamp, step and value', async () => {
    otel = pipelines();
    const run = otel.logger.startRun({ name: 'points' });
    const t0 = Date.UTC(2026, 0, 1);
    run.logMetrics({ loss: 0.25, acc: 0.75 }, { step: 5, timestamp: t0 });
    run.logMetrics({ loss: 0.125 }, { step: 6, timestamp: new Date(t0 + 1500) });
    run.logMetrics({ loss: 2 }); // default step 7, timestamp now
    await run.finish();

    const span = spanByName(otel.spans(), 'points');
    const points = otel.records('ml.metric');
    expect(points.map((r) => r.attributes)).toEqual([
      { 'ml.metric.key': 'loss', 'ml.metric.value': 0.25, 'ml.metric.step': 5, 'ml.run.id': run.id },
      { 'ml.metric.key': 'acc', 'ml.metric.value': 0.75, 'ml.metric.step': 5, 'ml.run.id': run.id },
      { 'ml.metric.key': 'loss', 'ml.metric.value': 0.125, 'ml.metric.step': 6, 'ml.run.id': run.id },
      { 'ml.metric.key': 'loss', 'ml.metric.value': 2, 'ml.metric.step': 7, 'ml.run.id': run.id },
    ]);
    expect(points.map((r) => millis(r.hrTime)).slice(0, 3)).toEqual([t0, t0, t0 + 1500]);
    for (const point of points) {
      expect(point.eventName).toBe('ml.metric');
      expect(sameSpan(point.spanContext, span.spanContext())).toBe(true);
      expect(point.droppedAttributesCount).toBe(0);
    }
  });

  it('carries NaN, ±Infinity and out-of-int64 values as strings that decode back exactly', async () => {
    otel = pipelines();
    const values = { nan: Number.NaN, inf: Infinity, ninf: -Infinity, huge: 1e300, nhuge: -(2 ** 63), big: 2 ** 62, neg: -3, tiny: 5e-324, zero: 0 };
    const run = otel.logger.startRun({ name: 'odd' });
    run.logMetrics(values, { step: 1 });
    await run.finish();
    const byKey = new Map(otel.records('ml.metric').map((r) => [r.attributes['ml.metric.key'], r.attributes['ml.metric.value']]));
    expect(Object.fromEntries(byKey)).toEqual({ nan: 'NaN', inf: 'Infinity', ninf: '-Infinity', huge: '1e+300', nhuge: '-9223372036854776000', big: 2 ** 62, neg: -3, tiny: 5e-324, zero: 0 });
    for (const [key, value] of Object.entries(values)) expect(fromMetricAttributeValue(byKey.get(key))).toBe(value);
    // The span's summaries use the same encoding.
    const span = spanByName(otel.spans(), 'odd');
    expect(span.attributes['ml.metric.nan']).toBe('NaN');
    expect(span.attributes['ml.metric.inf']).toBe('Infinity');
    expect(span.attributes['ml.metric.big']).toBe(2 ** 62);
  });

  it('encodes and decodes metric values symmetrically and rejects what is not one', () => {
    for (const v of [0, -0.5, 1.5, 2 ** 63 - 2 ** 10, -(2 ** 63) + 2 ** 10, Number.MAX_VALUE, -Number.MAX_VALUE, Number.NaN, Infinity, -Infinity]) {
      expect(fromMetricAttributeValue(toMetricAttributeValue(v))).toBe(v);
    }
    expect(fromMetricAttributeValue('42')).toBe(42); // an int64 decoded as a decimal string
    expect(fromMetricAttributeValue({ toNumber: () => 7 })).toBe(7); // a protobufjs Long
    expect(fromMetricAttributeValue(12n)).toBe(12);
    expect(() => fromMetricAttributeValue(null)).toThrow(TypeError);
    expect(() => fromMetricAttributeValue('abc')).toThrow(TypeError);
  });

  it('emits ml.run.start, ml.params, ml.tags and ml.run.end in the run span so a consumer can build the run live', async () => {
    otel = pipelines();
    const parent = otel.logger.startRun({ name: 'parent', experiment: 'exp' });
    const run = otel.logger.startRun({ name: 'child', experiment: 'exp', parent, config: { opt: { name: 'adam' } }, tags: { owner: 'me' } });
    run.logParams({ batch: 32 });
    run.setTags({ phase: 'fit' });
    await run.finish();
    await parent.finish();

    const span = spanByName(otel.spans(), 'child');
    const mine = otel.records().filter((r) => r.attributes['ml.run.id'] === run.id);
    expect(mine.map((r) => r.eventName)).toEqual(['ml.run.start', 'ml.params', 'ml.tags', 'ml.run.end']);
    for (const record of mine) expect(sameSpan(record.spanContext, span.spanContext())).toBe(true);
    expect(mine[0]!.attributes).toEqual({
      'ml.run.id': run.id,
      'ml.run.name': 'child',
      'ml.experiment.name': 'exp',
      'ml.run.parent_id': parent.id,
      'ml.param.opt.name': 'adam',
      'ml.tag.owner': 'me',
    });
    expect(millis(mine[0]!.hrTime)).toBe(millis(span.startTime));
    expect(mine[1]!.attributes).toEqual({ 'ml.run.id': run.id, 'ml.param.batch': '32' });
    expect(mine[2]!.attributes).toEqual({ 'ml.run.id': run.id, 'ml.tag.phase': 'fit' });
    expect(mine[3]!.attributes).toEqual({ 'ml.run.id': run.id, 'ml.run.status': 'success', 'ml.run.metric_records_count': 0 });
    expect(millis(mine[3]!.hrTime)).toBe(millis(span.endTime));
  });

  it('ml.run.end and the span count the ml.metric records the run emitted (a bridge forwards the end once it has them all)', async () => {
    otel = pipelines();
    const run = otel.logger.startRun({ name: 'counted' });
    for (let step = 0; step < 3; step++) run.logMetrics({ loss: 1 / (step + 1), acc: step / 3 }, { step });
    run.logMetrics({ loss: 0.1 }, { step: 3 });
    await run.finish();
    const end = otel.records('ml.run.end').find((r) => r.attributes['ml.run.id'] === run.id)!;
    expect(otel.records('ml.metric').filter((r) => r.attributes['ml.run.id'] === run.id)).toHaveLength(7);
    expect(end.attributes['ml.run.metric_records_count']).toBe(7);
    expect(spanByName(otel.spans(), 'counted').attributes['ml.run.metric_records_count']).toBe(7);
  });

  it('emits ml.artifact (span event and record) with the sha256 once hashed, before the run ends', async () => {
    otel = pipelines();
    const dir = mkdtempSync(join(tmpdir(), 'runtel-otel-art-'));
    const file = join(dir, 'weights.bin');
    writeFileSync(file, Buffer.alloc(100_000, 7));
    const expected = createHash('sha256').update(Buffer.alloc(100_000, 7)).digest('hex');
    const run = otel.logger.startRun({ name: 'art' });
    run.logArtifact(file, { name: 'ckpt/weights.bin' });
    run.logModel({ w: [1, 2, 3] }, { name: 'tiny' });
    await run.finish();

    const span = spanByName(otel.spans(), 'art');
    const events = span.events.filter((e) => e.name === 'ml.artifact');
    expect(events).toHaveLength(2);
    const records = otel.records('ml.artifact');
    expect(records).toHaveLength(2);
    const weights = records.find((r) => r.attributes['ml.artifact.name'] === 'ckpt/weights.bin')!;
    expect(weights.attributes).toEqual({
      'ml.run.id': run.id,
      'ml.artifact.path': file,
      'ml.artifact.name': 'ckpt/weights.bin',
      'ml.artifact.kind': 'file',
      'ml.artifact.size': 100_000,
      'ml.artifact.sha256': expected,
    });
    const model = records.find((r) => r.attributes['ml.artifact.name'] === 'models/tiny')!;
    expect(model.attributes['ml.artifact.kind']).toBe('directory');
    expect(model.attributes['ml.artifact.sha256']).toMatch(/^[0-9a-f]{64}$/);
    expect(sameSpan(weights.spanContext, span.spanContext())).toBe(true);
    const order = otel.records().filter((r) => r.attributes['ml.run.id'] === run.id).map((r) => r.eventName);
    expect(order.indexOf('ml.run.end')).toBe(order.length - 1);
  });

  it('forceFlush waits for pending artifact hashes', async () => {
    otel = pipelines();
    const dir = mkdtempSync(join(tmpdir(), 'runtel-otel-art-'));
    const file = join(dir, 'big.bin');
    writeFileSync(file, Buffer.alloc(5_000_000, 1));
    const run = otel.logger.startRun({ name: 'flush' });
    run.logArtifact(file);
    expect(otel.records('ml.artifact')).toHaveLength(0);
    await otel.logger.forceFlush();
    expect(otel.records('ml.artifact')).toHaveLength(1);
    expect(otel.records('ml.artifact')[0]!.attributes['ml.artifact.sha256']).toBe(createHash('sha256').update(Buffer.alloc(5_000_000, 1)).digest('hex'));
    await run.finish();
  });

  it('also writes event.name attributes when asked', async () => {
    otel = pipelines({ logger: { eventNameAttribute: true, logRecordAttributeCountLimit: 6 } });
    await withRun(otel.logger, { name: 'legacy', config: { a: 1, b: 2, c: 3 } }, (run) => run.logMetrics({ loss: 1 }));
    for (const record of otel.records()) {
      expect(record.attributes['event.name']).toBe(record.eventName);
      expect(Object.keys(record.attributes).length).toBeLessThanOrEqual(6);
    }
    expect(otel.records('ml.metric')[0]!.attributes).toMatchObject({ 'event.name': 'ml.metric', 'ml.metric.key': 'loss' });
  });

  it('uses the documented names in its hot path literals', () => {
    expect([conventions.ATTR_METRIC_KEY, conventions.ATTR_METRIC_VALUE, conventions.ATTR_METRIC_STEP, conventions.ATTR_RUN_ID]).toEqual([
      'ml.metric.key',
      'ml.metric.value',
      'ml.metric.step',
      'ml.run.id',
    ]);
  });
});
