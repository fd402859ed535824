import { afterEach, describe, expect, it } from 'vitest';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import type { Pipelines } from './helpers.js';
import { pipelines } from './helpers.js';

let otel: Pipelines | undefined;
afterEach(async () => {
  await otel?.shutdown();
  otel = undefined;
});

function points(metric: MetricData | undefined): Array<DataPoint<number>> {
  if (metric === undefined) return [];
  return metric.dataPoints as Array<DataPoint<number>>;
}

describe('OtelLogger instruments', () => {
  it('reports each run and key latest value on the ml.metric gauge, the step, runs by status and durations', async () => {
    otel = pipelines();
    const run = otel.logger.startRun({ name: 'dash', experiment: 'cifar' });
    run.logMetrics({ loss: 0.9, acc: 0.1 }, { step: 0 });
    run.logMetrics({ loss: 0.5, acc: Number.NaN }, { step: 4 });
    let metrics = await otel.reader.metrics();
    const gauge = metrics.get('ml.metric')!;
    expect(gauge.dataPointType).toBe(DataPointType.GAUGE);
    const base = { 'ml.run.id': run.id, 'ml.run.name': 'dash', 'ml.experiment.name': 'cifar' };
    // A NaN latest value is not observed (OTLP/JSON cannot carry it): a key with no finite value yet has no series.
    expect(points(gauge).map((p) => [p.attributes, p.value])).toEqual([[{ 'ml.metric.key': 'loss', ...base }, 0.5]]);
    expect(points(metrics.get('ml.run.step')).map((p) => [p.attributes, p.value])).toEqual([[base, 4]]);
    run.logMetrics({ acc: 0.2 }, { step: 5 });
    metrics = await otel.reader.metrics();
    expect(points(metrics.get('ml.metric')).map((p) => [p.attributes['ml.metric.key'], p.value])).toEqual([
      ['loss', 0.5],
      ['acc', 0.2],
    ]);
    expect(points(metrics.get('ml.run.step')).map((p) => p.value)).toEqual([5]);
    await run.finish();
    const failed = otel.logger.startRun({ name: 'bad', experiment: 'cifar' });
    await failed.finish('failed', new Error('x'));

    metrics = await otel.reader.metrics();
    expect(points(metrics.get('ml.runs')).map((p) => [p.attributes, p.value])).toEqual([
      [{ 'ml.run.status': 'success', 'ml.experiment.name': 'cifar' }, 1],
      [{ 'ml.run.status': 'failed', 'ml.experiment.name': 'cifar' }, 1],
    ]);
    const duration = metrics.get('ml.run.duration')!;
    expect(duration.descriptor.unit).toBe('s');
    const histogram = duration.dataPoints[0]!.value as Histogram;
    expect(histogram.count).toBe(1);
    expect(histogram.sum).toBeGreaterThanOrEqual(0);
    expect(histogram.sum).toBeLessThan(60);
    expect(histogram.buckets.boundaries).toContain(3600);
    expect(metrics.get('ml.metric.overflow')).toBeUndefined();
  });

  it('bounds the gauge series (runs per process, keys per run) and counts the overflow', async () => {
    otel = pipelines({ logger: { maxGaugeRuns: 2, maxGaugeKeysPerRun: 3 } });
    const values = { a: 1, b: 2, c: 3, d: 4, e: 5 };
    for (const name of ['r1', 'r2', 'r3']) {
      const run = otel.logger.startRun({ name });
      run.logMetrics(values);
      run.logMetrics(values);
      await run.finish();
    }
    expect(otel.logger.gaugeOverflow()).toEqual({ runs: 10, keys: 8 });
    const metrics = await otel.reader.metrics();
    const series = points(metrics.get('ml.metric'));
    expect(series).toHaveLength(6);
    expect(new Set(series.map((p) => p.attributes['ml.run.name']))).toEqual(new Set(['r1', 'r2']));
    expect(new Set(series.map((p) => p.attributes['ml.metric.key']))).toEqual(new Set(['a', 'b', 'c']));
    expect(points(metrics.get('ml.run.step'))).toHaveLength(2);
    expect(points(metrics.get('ml.metric.overflow')).map((p) => [p.attributes, p.value])).toEqual([
      [{ reason: 'runs' }, 10],
      [{ reason: 'keys' }, 8],
    ]);
    // Every point still went out as a log record.
    expect(otel.records('ml.metric')).toHaveLength(30);
  });
});
