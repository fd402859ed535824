import { afterEach, describe, expect, it } from 'vitest';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { CompositeLogger } from '../../src/backends/CompositeLogger.js';
import { InMemoryLogger } from '../../src/backends/InMemoryLogger.js';
import { withRun } from '../../src/core/context.js';
import type { Pipelines } from './helpers.js';
import { millis, pipelines, sameSpan, sleep, spanByName } from './helpers.js';

let otel: Pipelines | undefined;
afterEach(async () => {
  await otel?.shutdown();
  otel = undefined;
});

describe('OtelLogger spans', () => {
  it('maps a top-level run to a root span with exact attributes, the event times and status OK', async () => {
    otel = pipelines();
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([otel.logger, memory], { flushTimeoutMillis: 20_000 });
    const run = logger.startRun({ name: 'baseline', experiment: 'mnist', config: { lr: 0.001, model: { layers: [64, 32] } }, tags: { team: 'vision' } });
    run.logMetrics({ loss: 0.9, acc: 0.5 }, { step: 1, timestamp: 1_000 });
    run.logMetrics({ loss: 0.5 }, { step: 3, timestamp: 2_000 });
    run.logMetrics({ loss: 0.7 }, { step: 2, timestamp: 3_000 }); // lower step, later: not the latest
    run.logMetrics({ loss: 0.4 }, { step: 3, timestamp: 2_500 }); // same step, later timestamp: latest
    run.setTags({ team: 'vision-2', stage: 'dev' });
    run.logParams({ epochs: 10 });
    await run.finish();

    const span = spanByName(otel.spans(), 'baseline');
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes).toEqual({
      'ml.run.id': run.id,
      'ml.run.name': 'baseline',
      'ml.experiment.name': 'mnist',
      'ml.param.lr': '0.001',
      'ml.param.model.layers': '[64,32]',
      'ml.param.epochs': '10',
      'ml.tag.team': 'vision-2',
      'ml.tag.stage': 'dev',
      'ml.run.status': 'success',
      'ml.run.metric_records_count': 5,
      'ml.metric.loss': 0.4,
      'ml.metric.acc': 0.5,
    });
    expect(span.status).toEqual({ code: SpanStatusCode.OK });
    const record = memory.getRun(run.id)!;
    expect(millis(span.startTime)).toBe(record.startTime);
    expect(millis(span.endTime)).toBe(record.endTime);
    expect(span.events).toEqual([]);
  });

  it('makes nested runs child spans of their parent and keeps parallel trials apart', async () => {
    otel = pipelines();
    const logger = otel.logger;
    const userTracer = otel.tracerProvider.getTracer('user-code');
    const trialIds: string[] = [];
    const parentId = await withRun(logger, { name: 'sweep' }, async (parent) => {
      await Promise.all(
        [0, 1, 2].map((i) =>
          withRun(logger, { name: `trial-${i}`, nested: true, config: { lr: 10 ** -i } }, async (trial) => {
            trialIds.push(trial.id);
            await sleep(5 * (3 - i)); // interleave the trials
            userTracer.startActiveSpan(`work-${i}`, (span) => span.end());
            trial.logMetrics({ loss: i });
            await sleep(1);
            trial.logMetrics({ loss: i / 2 });
          }),
        ),
      );
      return parent.id;
    });

    const spans = otel.spans();
    const sweep = spanByName(spans, 'sweep');
    expect(sweep.parentSpanContext).toBeUndefined();
    for (const i of [0, 1, 2]) {
      const trial = spanByName(spans, `trial-${i}`);
      expect(sameSpan(trial.parentSpanContext, sweep.spanContext())).toBe(true);
      expect(trial.spanContext().traceId).toBe(sweep.spanContext().traceId);
      expect(trial.attributes['ml.run.parent_id']).toBe(parentId);
      expect(trial.attributes['ml.param.lr']).toBe(String(10 ** -i));
      const work = spanByName(spans, `work-${i}`);
      expect(sameSpan(work.parentSpanContext, trial.spanContext())).toBe(true);
      // The trial's metric records name the trial's span.
      const points = otel.records('ml.metric').filter((r) => r.attributes['ml.run.id'] === trial.attributes['ml.run.id']);
      expect(points).toHaveLength(2);
      for (const point of points) expect(sameSpan(point.spanContext, trial.spanContext())).toBe(true);
    }
    expect(new Set(trialIds).size).toBe(3);
    expect(sweep.attributes['ml.run.parent_id']).toBeUndefined();
  });

  it('marks a failed run ERROR with the exception recorded on the span', async () => {
    otel = pipelines();
    let runId = '';
    await expect(
      withRun(otel.logger, { name: 'doomed' }, (run) => {
        runId = run.id;
        run.logMetrics({ loss: 1 });
        throw new TypeError('shape mismatch');
      }),
    ).rejects.toThrow('shape mismatch');

    const span = spanByName(otel.spans(), 'doomed');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'TypeError: shape mismatch' });
    expect(span.attributes['ml.run.status']).toBe('failed');
    expect(span.events).toHaveLength(1);
    const exception = span.events[0]!;
    expect(exception.name).toBe('exception');
    expect(exception.attributes?.['exception.type']).toBe('TypeError');
    expect(exception.attributes?.['exception.message']).toBe('shape mismatch');
    expect(String(exception.attributes?.['exception.stacktrace'])).toContain('TypeError: shape mismatch');
    expect(millis(exception.time)).toBe(millis(span.endTime));

    const [end] = otel.records('ml.run.end');
    expect(end!.attributes).toMatchObject({
      'ml.run.id': runId,
      'ml.run.status': 'failed',
      'exception.type': 'TypeError',
      'exception.message': 'shape mismatch',
    });
    expect(end!.attributes['exception.stacktrace']).toContain('shape mismatch');
  });

  it('marks a killed run ERROR with description "killed"', async () => {
    otel = pipelines();
    const run = otel.logger.startRun({ name: 'interrupted' });
    run.logMetrics({ loss: 2 });
    await otel.logger.shutdown(); // finishes open runs as killed
    const span = spanByName(otel.spans(), 'interrupted');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'killed' });
    expect(span.attributes['ml.run.status']).toBe('killed');
    expect(span.events).toEqual([]);
  });

  it('makes user spans inside withRun children of the run span', async () => {
    otel = pipelines();
    const tracer = otel.tracerProvider.getTracer('user-code');
    let active: string | undefined;
    await withRun(otel.logger, { name: 'train' }, async () => {
      // Auto-instrumentation reads the active span the same way.
      active = trace.getActiveSpan()?.spanContext().spanId;
      await tracer.startActiveSpan('load-data', async (span) => {
        await sleep(1);
        tracer.startActiveSpan('decode', (inner) => inner.end());
        span.end();
      });
    });
    expect(trace.getActiveSpan()).toBeUndefined();
    const spans = otel.spans();
    const run = spanByName(spans, 'train');
    expect(active).toBe(run.spanContext().spanId);
    const load = spanByName(spans, 'load-data');
    expect(sameSpan(load.parentSpanContext, run.spanContext())).toBe(true);
    expect(sameSpan(spanByName(spans, 'decode').parentSpanContext, load.spanContext())).toBe(true);
  });

  it("starts a top-level run as a new trace even inside someone else's active span", async () => {
    otel = pipelines();
    const tracer = otel.tracerProvider.getTracer('web-framework');
    await tracer.startActiveSpan('POST /train', async (request) => {
      await withRun(otel!.logger, { name: 'triggered' }, async (run) => {
        const child = otel!.logger.startRun({ name: 'inner', nested: true });
        await child.finish();
        run.logMetrics({ loss: 1 });
      });
      request.end();
    });
    const spans = otel.spans();
    const request = spanByName(spans, 'POST /train');
    const run = spanByName(spans, 'triggered');
    expect(run.parentSpanContext).toBeUndefined();
    expect(run.spanContext().traceId).not.toBe(request.spanContext().traceId);
    expect(sameSpan(spanByName(spans, 'inner').parentSpanContext, run.spanContext())).toBe(true);
  });

  it('keeps the span within its attribute limit and counts what it left off; the records carry everything', async () => {
    otel = pipelines();
    const config: Record<string, number> = {};
    for (let i = 0; i < 300; i++) config[`p${String(i).padStart(3, '0')}`] = i;
    const run = otel.logger.startRun({ name: 'wide', config, tags: { a: '1', b: '2' } });
    const later: Record<string, number> = {};
    for (let i = 0; i < 50; i++) later[`q${i}`] = i;
    run.logParams(later);
    const metrics: Record<string, number> = {};
    for (let i = 0; i < 40; i++) metrics[`m${i}`] = i;
    run.logMetrics(metrics);
    await run.finish();

    const span = spanByName(otel.spans(), 'wide');
    const keys = Object.keys(span.attributes);
    expect(keys.length).toBeLessThanOrEqual(128);
    expect(span.droppedAttributesCount).toBe(0);
    // Params and tags share 3/4 of the 119 free slots (89): the two tags are logged after 300 params, so they are left off.
    expect(keys.filter((k) => k.startsWith('ml.param.'))).toHaveLength(89);
    expect(span.attributes['ml.run.dropped_params_count']).toBe(300 + 50 - 89);
    expect(span.attributes['ml.run.dropped_tags_count']).toBe(2);
    // Metric summaries get the other 30.
    expect(keys.filter((k) => k.startsWith('ml.metric.'))).toHaveLength(30);
    expect(span.attributes['ml.run.dropped_metrics_count']).toBe(10);
    expect(span.attributes['ml.run.status']).toBe('success');

    // Every param travels in ml.run.start / ml.params records, each within the log attribute limit.
    const carriers = [...otel.records('ml.run.start'), ...otel.records('ml.params'), ...otel.records('ml.tags')];
    const params = new Map<string, unknown>();
    const tags = new Map<string, unknown>();
    for (const record of carriers) {
      expect(Object.keys(record.attributes).length).toBeLessThanOrEqual(128);
      expect(record.droppedAttributesCount).toBe(0);
      expect(record.attributes['ml.run.id']).toBe(run.id);
      for (const [key, value] of Object.entries(record.attributes)) {
        if (key.startsWith('ml.param.')) params.set(key.slice('ml.param.'.length), value);
        if (key.startsWith('ml.tag.')) tags.set(key.slice('ml.tag.'.length), value);
      }
    }
    expect(params.size).toBe(350);
    expect(params.get('p299')).toBe('299');
    expect(params.get('q49')).toBe('49');
    expect(Object.fromEntries(tags)).toEqual({ a: '1', b: '2' });
    expect(otel.records('ml.run.start')).toHaveLength(1);
    expect(otel.records('ml.params').length).toBeGreaterThanOrEqual(3);
  });

  it('follows a smaller configured span limit', async () => {
    otel = pipelines({ spanLimits: { attributeCountLimit: 20 }, logger: { spanAttributeCountLimit: 20, logRecordAttributeCountLimit: 10 }, logRecordLimits: { attributeCountLimit: 10 } });
    const config: Record<string, number> = {};
    for (let i = 0; i < 30; i++) config[`k${i}`] = i;
    const run = otel.logger.startRun({ name: 'narrow', config });
    run.logMetrics({ a: 1, b: 2, c: 3, d: 4, e: 5 });
    await run.finish();
    const span = spanByName(otel.spans(), 'narrow');
    expect(span.droppedAttributesCount).toBe(0);
    // 20 - 9 reserved = 11 free: 8 for params, 3 for metrics.
    expect(Object.keys(span.attributes).filter((k) => k.startsWith('ml.param.'))).toHaveLength(8);
    expect(span.attributes['ml.run.dropped_params_count']).toBe(22);
    expect(span.attributes['ml.run.dropped_metrics_count']).toBe(2);
    const carriers = [...otel.records('ml.run.start'), ...otel.records('ml.params')];
    for (const record of carriers) expect(record.droppedAttributesCount).toBe(0);
    expect(carriers.flatMap((r) => Object.keys(r.attributes).filter((k) => k.startsWith('ml.param.')))).toHaveLength(30);
  });

  it('gives a resumed run a new span marked ml.run.resumed', async () => {
    otel = pipelines();
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, otel.logger], { flushTimeoutMillis: 20_000 });
    const first = logger.startRun({ name: 'long' });
    first.logMetrics({ loss: 1 });
    await first.finish('killed');
    const again = logger.startRun({ runId: first.id });
    again.logMetrics({ loss: 0.5 });
    await again.finish();
    const spans = otel.spans().filter((s) => s.name === 'long');
    expect(spans).toHaveLength(2);
    expect(spans[1]!.attributes['ml.run.resumed']).toBe(true);
    expect(spans[1]!.attributes['ml.run.id']).toBe(first.id);
    expect(spans[1]!.attributes['ml.metric.loss']).toBe(0.5);
  });
});
