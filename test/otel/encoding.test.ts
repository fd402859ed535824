// NaN, ±Infinity and huge values through the real OTLP serializers of @opentelemetry/otlp-transformer.
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLogsSerializer, JsonTraceSerializer, ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { fromMetricAttributeValue } from '../../src/otel/conventions.js';
import type { Pipelines } from './helpers.js';
import { pipelines, spanByName } from './helpers.js';
import { attributesOf, decodeJsonLogs, decodeJsonSpans, decodeProtobufLogs, decodeProtobufSpans, wireType } from './otlp.js';
import type { OtlpLogRecord } from './otlp.js';

let otel: Pipelines | undefined;
afterEach(async () => {
  await otel?.shutdown();
  otel = undefined;
});

const VALUES: Record<string, number> = { nan: Number.NaN, inf: Infinity, ninf: -Infinity, huge: 1e300, half: 0.5, two: 2, neg: -7, big: 2 ** 60 };

async function logged(): Promise<{ records: ReadableLogRecord[]; raw: ReadableLogRecord[]; otel: Pipelines; runId: string }> {
  otel = pipelines();
  const run = otel.logger.startRun({ name: 'encoding' });
  run.logMetrics(VALUES, { step: 3, timestamp: 1_700_000_000_123 });
  // The same values written as plain numbers, as a naive integration would.
  const raw = otel.loggerProvider.getLogger('naive');
  for (const [key, value] of Object.entries(VALUES)) raw.emit({ eventName: 'naive', attributes: { key, value } });
  await run.finish();
  const all = otel.logExporter.getFinishedLogRecords();
  return { records: all.filter((r) => r.eventName === 'ml.metric'), raw: all.filter((r) => r.eventName === 'naive'), otel, runId: run.id };
}

function byKey(records: OtlpLogRecord[], keyAttr: string): Map<string, OtlpLogRecord> {
  return new Map(records.map((r) => [String(attributesOf(r.attributes)[keyAttr]), r]));
}

describe('metric values through OTLP encodings', () => {
  it('JSON: plain NaN/±Infinity become null (lost); runtel sends strings and every value decodes back exactly', async () => {
    const { records, raw, runId } = await logged();
    const naive = byKey(decodeJsonLogs(JsonLogsSerializer.serializeRequest(raw)!)[0]!.records, 'key');
    // What JSON.stringify does to a plain NaN attribute: `{"doubleValue":null}`, which the Collector's JSON reader rejects.
    expect(naive.get('nan')!.attributes.find((a) => a.key === 'value')!.value).toEqual({ doubleValue: null });
    expect(naive.get('inf')!.attributes.find((a) => a.key === 'value')!.value).toEqual({ doubleValue: null });
    expect(naive.get('huge')!.attributes.find((a) => a.key === 'value')!.value).toEqual({ intValue: 1e300 }); // out of int64 range

    const text = Buffer.from(JsonLogsSerializer.serializeRequest(records)!).toString('utf8');
    expect(text).not.toContain('null');
    const ours = byKey(decodeJsonLogs(Buffer.from(text))[0]!.records, 'ml.metric.key');
    expect(ours.size).toBe(Object.keys(VALUES).length);
    for (const [key, value] of Object.entries(VALUES)) {
      const record = ours.get(key)!;
      const attributes = attributesOf(record.attributes);
      expect(fromMetricAttributeValue(attributes['ml.metric.value'])).toBe(value);
      expect(attributes['ml.metric.step']).toBe(3);
      expect(attributes['ml.run.id']).toBe(runId);
      expect(record.eventName).toBe('ml.metric');
      expect(record.timeUnixNano).toBe('1700000000123000000');
      expect(record.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(record.spanId).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(wireType(ours.get('nan')!.attributes, 'ml.metric.value')).toBe('stringValue');
    expect(wireType(ours.get('half')!.attributes, 'ml.metric.value')).toBe('doubleValue');
    expect(wireType(ours.get('two')!.attributes, 'ml.metric.value')).toBe('intValue'); // integral doubles travel as intValue
  });

  it('protobuf: plain NaN/±Infinity survive as doubles; runtel sends the same strings as for JSON, decoding back exactly', async () => {
    const { records, raw, runId } = await logged();
    const naive = byKey(decodeProtobufLogs(ProtobufLogsSerializer.serializeRequest(raw)!)[0]!.records, 'key');
    expect(attributesOf(naive.get('nan')!.attributes).value).toBeNaN();
    expect(attributesOf(naive.get('ninf')!.attributes).value).toBe(-Infinity);
    expect(wireType(naive.get('huge')!.attributes, 'value')).toBe('doubleValue'); // ≥ 2^63 goes as double here

    const ours = byKey(decodeProtobufLogs(ProtobufLogsSerializer.serializeRequest(records)!)[0]!.records, 'ml.metric.key');
    expect(ours.size).toBe(Object.keys(VALUES).length);
    for (const [key, value] of Object.entries(VALUES)) {
      const record = ours.get(key)!;
      const attributes = attributesOf(record.attributes);
      expect(fromMetricAttributeValue(attributes['ml.metric.value'])).toBe(value);
      expect(attributes['ml.metric.step']).toBe(3);
      expect(attributes['ml.run.id']).toBe(runId);
      expect(record.eventName).toBe('ml.metric');
      expect(record.timeUnixNano).toBe('1700000000123000000');
    }
    expect(wireType(ours.get('neg')!.attributes, 'ml.metric.value')).toBe('intValue');
    expect(attributesOf(ours.get('big')!.attributes)['ml.metric.value']).toBe(2 ** 60);
  });

  it('keeps trace and span ids consistent between the span and its records in both encodings', async () => {
    const { records, otel: p } = await logged();
    const span = spanByName(p.spans(), 'encoding');
    const jsonSpan = decodeJsonSpans(JsonTraceSerializer.serializeRequest([span])!)[0]!.spans[0]!;
    const protoSpan = decodeProtobufSpans(ProtobufTraceSerializer.serializeRequest([span])!)[0]!.spans[0]!;
    const jsonRecord = decodeJsonLogs(JsonLogsSerializer.serializeRequest(records)!)[0]!.records[0]!;
    const protoRecord = decodeProtobufLogs(ProtobufLogsSerializer.serializeRequest(records)!)[0]!.records[0]!;
    for (const s of [jsonSpan, protoSpan]) {
      expect(s.traceId).toBe(span.spanContext().traceId);
      expect(s.spanId).toBe(span.spanContext().spanId);
      expect(fromMetricAttributeValue(attributesOf(s.attributes)['ml.metric.nan'])).toBeNaN();
      expect(fromMetricAttributeValue(attributesOf(s.attributes)['ml.metric.ninf'])).toBe(-Infinity);
    }
    for (const r of [jsonRecord, protoRecord]) {
      expect(r.traceId).toBe(span.spanContext().traceId);
      expect(r.spanId).toBe(span.spanContext().spanId);
    }
  });
});
