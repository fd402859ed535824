// Every metric point of a long run survives a real Collector: 10,000 steps × 3 metrics logged by
// OtelLogger, sent as OTLP/HTTP (protobuf, then JSON) to otelcol-runtel, whose logs pipeline
// (otlp receiver → batch → otlphttp exporter, default protobuf + gzip) posts to a sink here. Each
// of the 30,000 points must arrive exactly once with its exact step, value (NaN, ±Infinity and
// values beyond int64 included, per the conventions' encoding) and millisecond timestamp.
import { afterAll, describe, expect, it } from 'vitest';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OtelLogger } from '../../../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../../../src/otel/CountingBatchLogRecordProcessor.js';
import { fromMetricAttributeValue } from '../../../src/otel/conventions.js';
import { startForwardingCollector } from '../../services/index.js';
import type { CollectorHandle } from '../../services/index.js';
import { attributesOf, decodeProtobufLogs } from '../otlp.js';
import type { OtlpLogRecord } from '../otlp.js';
import { poll, setupOrFail, startOtlpSink } from './util.js';
import type { OtlpSink } from './util.js';

const STEPS = 10_000;
const KEYS = ['loss', 'acc', 'lr'] as const;
const POINTS = STEPS * KEYS.length;

/** The value logged for `key` at `step`: specials (NaN, ±Infinity, ±1e300, 2^60) among ordinary doubles and integers. */
function valueAt(key: (typeof KEYS)[number], step: number): number {
  switch (key) {
    case 'loss': {
      const specials: Record<number, number> = { 7: Number.NaN, 13: Infinity, 17: -Infinity, 19: 1e300, 23: -1e300, 29: 2 ** 60, 31: -(2 ** 62) };
      return specials[step % 100] ?? 1 / (step + 1);
    }
    case 'acc':
      return step / STEPS; // 0 (an int) at step 0
    case 'lr':
      return step % 2 === 0 ? (step % 7) - 3 : Number.EPSILON * step; // small ints (negative too) and tiny doubles
  }
}

let collector: CollectorHandle | undefined;
let sink: OtlpSink | undefined;
let otlpUrl = '';

const ready = setupOrFail(async () => {
  sink = await startOtlpSink();
  // The otlp_http exporter keeps its defaults: encoding proto, compression gzip, a sending queue.
  ({ collector, otlpUrl } = await startForwardingCollector(sink.url, { signals: ['logs'] }));
});

afterAll(async () => {
  await collector?.stop();
  await sink?.close();
});

/** The sink's log records, decoded incrementally (requests already seen are not decoded again). */
function recordReader(s: OtlpSink): () => OtlpLogRecord[] {
  const records: OtlpLogRecord[] = [];
  let done = 0;
  return () => {
    for (; done < s.requests.length; done++) {
      const request = s.requests[done]!;
      if (request.path !== '/v1/logs') throw new Error(`unexpected request to ${request.path}`);
      // What the collector's otlphttp exporter sends by default.
      if (request.contentType !== 'application/x-protobuf' || request.contentEncoding !== 'gzip') {
        throw new Error(`collector sent ${request.contentType} / ${request.contentEncoding || 'identity'}`);
      }
      for (const batch of decodeProtobufLogs(request.body)) records.push(...batch.records);
    }
    return records;
  };
}

describe.each<['http/protobuf' | 'http/json']>([['http/protobuf'], ['http/json']])('%s → otelcol-runtel → otlphttp (proto+gzip) → sink', (protocol) => {
  it(`delivers all ${POINTS} points exactly once with exact step, value and timestamp`, async () => {
    ready();
    const url = `${otlpUrl}/v1/logs`;
    const exporter = protocol === 'http/json' ? new JsonLogExporter({ url }) : new ProtoLogExporter({ url });
    const resource = resourceFromAttributes({ 'service.name': `runtel-every-step-${protocol}` });
    const spanExporter = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
    const processor = new CountingBatchLogRecordProcessor({ exporter });
    const loggerProvider = new LoggerProvider({ resource, processors: [processor] });
    const meterProvider = new MeterProvider({ resource });
    const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, delivery: processor, exclusiveProcessor: processor, flushTimeoutMillis: 60_000 });

    const t0 = performance.now();
    const base = Date.now() - 3_600_000;
    const timestampAt = (step: number): number => base + step * 250 + (step % 3); // ms, strictly increasing
    const run = logger.startRun({ name: `every-step-${protocol}`, experiment: 'every-step' });
    for (let step = 0; step < STEPS; step++) {
      const values: Record<string, number> = {};
      for (const key of KEYS) values[key] = valueAt(key, step);
      run.logMetrics(values, { step, timestamp: timestampAt(step) });
      if (step % 1000 === 999) await new Promise((resolve) => setImmediate(resolve)); // a training loop yields now and then
    }
    await run.finish('success');
    await logger.shutdown();
    const span = spanExporter.getFinishedSpans().find((s) => s.attributes['ml.run.id'] === run.id)!; // before shutdown() clears it
    await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
    const stats = processor.deliveryStats();
    expect(stats).toMatchObject({ accepted: POINTS + 2, exported: POINTS + 2, undelivered: 0, pending: 0 });
    const sent = performance.now();

    // Wait for this run's records at the sink (the other case's run shares it), then for stragglers.
    const read = recordReader(sink!);
    const mine = (): OtlpLogRecord[] => read().filter((r) => attributesOf(r.attributes)['ml.run.id'] === run.id);
    let lastSeen = 0;
    await poll(
      () => `sink: ${POINTS + 2} records of run ${run.id} (last seen: ${lastSeen})`,
      () => {
        lastSeen = mine().length;
        return Promise.resolve(lastSeen >= POINTS + 2 ? true : undefined);
      },
      60_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const records = mine();
    console.log(
      `[every-step ${protocol}] logged+exported ${Math.round(sent - t0)} ms, at the sink after ${Math.round(performance.now() - t0 - 1_000)} ms ` +
        `(${sink!.requests.length} collector requests so far)`,
    );

    // Run records: one start, one end, all in the run span's context.
    expect(span).toBeDefined();
    expect(records.filter((r) => r.eventName === 'ml.run.start')).toHaveLength(1);
    expect(records.filter((r) => r.eventName === 'ml.run.end')).toHaveLength(1);
    expect(records.filter((r) => r.eventName !== 'ml.metric')).toHaveLength(2);
    const badContext = records.filter((r) => r.traceId !== span.spanContext().traceId || r.spanId !== span.spanContext().spanId);
    expect(badContext).toHaveLength(0);

    // Every point exactly once, exact.
    const points = records.filter((r) => r.eventName === 'ml.metric');
    expect(points).toHaveLength(POINTS);
    const seen = new Map<string, number>();
    const mismatches: string[] = [];
    for (const record of points) {
      const attrs = attributesOf(record.attributes);
      const key = attrs['ml.metric.key'] as (typeof KEYS)[number];
      const step = attrs['ml.metric.step'] as number;
      const id = `${key}@${step}`;
      seen.set(id, (seen.get(id) ?? 0) + 1);
      const value = fromMetricAttributeValue(rawValue(record));
      const nanos = BigInt(record.timeUnixNano);
      const want = valueAt(key, step);
      if (!KEYS.includes(key) || !Number.isSafeInteger(step) || step < 0 || step >= STEPS) mismatches.push(`${id}: unknown point`);
      else if (!Object.is(value, want)) mismatches.push(`${id}: value ${value}, logged ${want}`);
      else if (nanos !== BigInt(timestampAt(step)) * 1_000_000n) mismatches.push(`${id}: time ${nanos} ns, logged ${timestampAt(step)} ms`);
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(seen.size).toBe(POINTS);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);

    // The specials came through as the conventions encode them.
    const wire = (key: string, step: number): Record<string, unknown> | undefined =>
      points.find((r) => {
        const a = attributesOf(r.attributes);
        return a['ml.metric.key'] === key && a['ml.metric.step'] === step;
      })?.attributes.find((a) => a.key === 'ml.metric.value')?.value;
    expect(wire('loss', 107)).toEqual({ stringValue: 'NaN' });
    expect(wire('loss', 113)).toEqual({ stringValue: 'Infinity' });
    expect(wire('loss', 117)).toEqual({ stringValue: '-Infinity' });
    expect(wire('loss', 119)).toEqual({ stringValue: '1e+300' });
    // 2^60 is an int64: exact in protobuf; OTLP/JSON writes the double's shortest form, which the
    // collector reads as the int64 1152921504606847000, the same double again in JavaScript.
    expect(wire('loss', 129)).toEqual({ intValue: protocol === 'http/json' ? '1152921504606847000' : (2n ** 60n).toString() });
    expect(Number(wire('loss', 129)!.intValue)).toBe(2 ** 60);
    expect(wire('acc', 1)).toEqual({ doubleValue: 0.0001 });
    expect(wire('lr', 4)).toEqual({ intValue: '1' });
    expect(collector!.logs()).not.toMatch(/\t(warn|error)\t/);
  }, 180_000);
});

/** The raw `ml.metric.value` as it travelled: whichever AnyValue field holds it (int64 as a decimal string). */
function rawValue(record: OtlpLogRecord): unknown {
  const value = record.attributes.find((a) => a.key === 'ml.metric.value')?.value;
  if (value === undefined || Object.keys(value).length !== 1) throw new Error(`a metric record with ml.metric.value ${JSON.stringify(value)}`);
  return Object.values(value)[0];
}
