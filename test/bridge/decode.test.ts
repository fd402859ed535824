// Bodies written by the real OTel JS serializers (@opentelemetry/otlp-transformer's Json* and
// Protobuf* serializers, what the OTLP/HTTP exporters send) decode, through the bridge's codec and
// the OTLP adapter, to exactly the run events the translator makes of the SDK's own objects; and
// posted to a running bridge (± gzip), reach its backend as those events.

import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { JsonLogsSerializer, JsonTraceSerializer, ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { RunEvent } from '../../src/core/events.js';
import { OtlpCodec } from '../../src/bridge/ingest/codec.js';
import { OTLP_DESCRIPTOR_METADATA } from '../../src/generated/otlp/descriptor.js';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import { OtelRunTranslator } from '../../src/otel/translate/OtelRunTranslator.js';
import { logInputsFromOtlp, nanosToMillis, spanInputsFromOtlp } from '../../src/otel/translate/otlpInputs.js';
import { logInputsFromProtobuf, nanosToMillisParts, spanInputsFromProtobuf } from '../../src/bridge/ingest/otlpProtobuf.js';
import { JSON_TYPE, PROTOBUF, RecordingBackend, loggedScenario, post, referenceEvents } from './helpers.js';
import type { Scenario } from './helpers.js';

let scenario: Scenario;
let reference: { logs: RunEvent[]; spans: RunEvent[] };
const codec = new OtlpCodec();

beforeAll(async () => {
  scenario = await loggedScenario();
  reference = referenceEvents(scenario);
});

type Encoding = 'json' | 'protobuf';

function bodies(encoding: Encoding): { logs: Buffer; traces: Buffer } {
  const logs = encoding === 'json' ? JsonLogsSerializer.serializeRequest(scenario.records) : ProtobufLogsSerializer.serializeRequest(scenario.records);
  const traces = encoding === 'json' ? JsonTraceSerializer.serializeRequest(scenario.spans) : ProtobufTraceSerializer.serializeRequest(scenario.spans);
  return { logs: Buffer.from(logs!), traces: Buffer.from(traces!) };
}

describe('the OTLP schema', () => {
  it('comes from opentelemetry-proto and has LogRecord.event_name', () => {
    expect(OTLP_DESCRIPTOR_METADATA.opentelemetryProto).toMatch(/^\d+\.\d+\.\d+$/);
    expect(OTLP_DESCRIPTOR_METADATA.files).toContain('opentelemetry/proto/logs/v1/logs.proto');
    const decoded = codec.decode('logs', 'protobuf', bodies('protobuf').logs);
    const first = ((decoded.resourceLogs as Array<{ scopeLogs: Array<{ logRecords: Array<{ eventName: string }> }> }>)[0]!.scopeLogs[0]!.logRecords[0]!);
    expect(first.eventName).toBe('ml.run.start');
  });
});

describe.each<[Encoding]>([['protobuf'], ['json']])('%s bodies from the OTel JS serializers', (encoding) => {
  it('decode to the same run events as the SDK objects', () => {
    const { logs, traces } = bodies(encoding);
    const translator = new OtelRunTranslator();
    const fromLogs = translator.logs(logInputsFromOtlp(codec.decode('logs', encoding, logs)));
    const fromSpans = translator.spans(spanInputsFromOtlp(codec.decode('traces', encoding, traces)));
    expect(fromLogs).toEqual(reference.logs);
    expect(fromSpans).toEqual(reference.spans);
    // The scenario's content is all there (the comparison is not vacuous).
    const metrics = fromLogs.filter((e) => e.type === 'metrics');
    expect(metrics.reduce((n, e) => n + Object.keys(e.values).length, 0)).toBe(6 + 2 + 20);
    const first = metrics.find((e) => e.runId === scenario.runIds.parent && e.step === 0)!;
    expect(first.values.loss).toBeNaN();
    expect(first.values).toMatchObject({ acc: 0.5, big: 2 ** 60, inf: Infinity, ninf: -Infinity, huge: 1e300 });
    expect(metrics.find((e) => e.runId === scenario.runIds.parent && e.step === 1)!.timestamp).toBe(1_790_000_001_123.5);
    expect(fromLogs.find((e) => e.type === 'run_finished' && e.runId === scenario.runIds.child)).toMatchObject({ status: 'failed', error: { type: 'TypeError', message: 'boom' } });
  });

  it.each<[boolean]>([[false], [true]])('posted to a bridge (gzip: %s) reach its backend as the same events', async (gzip) => {
    const backend = new RecordingBackend();
    // Ends are forwarded at once here (finishSettleMillis: 0): this compares decoding, in order.
    const bridge = await createBridge({ port: 0, targets: [backend], log: () => undefined, finishSettleMillis: 0 });
    try {
      const { logs, traces } = bodies(encoding);
      const headers = { ...(encoding === 'json' ? JSON_TYPE : PROTOBUF), ...(gzip ? { 'content-encoding': 'gzip' } : {}) };
      const pack = (b: Buffer): Buffer => (gzip ? gzipSync(b) : b);
      const logsResponse = await post(`${bridge.url}/v1/logs`, pack(logs), headers);
      const tracesResponse = await post(`${bridge.url}/v1/traces`, pack(traces), headers);
      for (const [signal, response] of [['logs', logsResponse], ['traces', tracesResponse]] as const) {
        expect(response.status, response.body.toString()).toBe(200);
        expect(response.headers['content-type']).toBe(encoding === 'json' ? 'application/json' : 'application/x-protobuf');
        expect(codec.decodeResponse(signal, encoding, response.body)).toEqual({});
      }
      // The artifact cannot be copied by the bridge: it arrives as a tag with its hash.
      const expected = [...reference.logs, ...reference.spans].map((event): RunEvent => {
        if (event.type !== 'artifact') return event;
        const sha256 = createHash('sha256').update(readFileSync(scenario.artifact.path)).digest('hex');
        return { type: 'tags', runId: event.runId, time: event.time, tags: { 'runtel.artifact.models/weights.bin': JSON.stringify({ kind: 'file', size: event.size, sha256, source: scenario.artifact.path }) } };
      });
      expect(backend.events).toEqual(expected);
      expect(bridge.stats()).toMatchObject({ logRecords: scenario.records.length, spans: scenario.spans.length, rejectedLogRecords: 0, artifacts: 1 });

      // The collector resends a batch (a retry after a lost answer): nothing new reaches the backend.
      const count = backend.events.length;
      expect((await post(`${bridge.url}/v1/logs`, pack(logs), headers)).status).toBe(200);
      expect((await post(`${bridge.url}/v1/traces`, pack(traces), headers)).status).toBe(200);
      const repeated = backend.events.slice(count);
      expect(repeated.filter((e) => e.type === 'run_started' || e.type === 'metrics' || e.type === 'run_finished')).toEqual([]);
    } finally {
      await bridge.close();
    }
  });
});

describe('the protobuf wire reader (the bridge\'s path for protobuf logs and traces)', () => {
  it('reads the same inputs as the schema decoder and the OTLP adapter', () => {
    const { logs, traces } = bodies('protobuf');
    expect(logInputsFromProtobuf(logs)).toEqual(logInputsFromOtlp(codec.decode('logs', 'protobuf', logs)));
    expect(spanInputsFromProtobuf(traces)).toEqual(spanInputsFromOtlp(codec.decode('traces', 'protobuf', traces)));
    expect(codec.decodeInputs('logs', 'protobuf', logs).logs.length).toBe(scenario.records.length);
  });

  it('reads every AnyValue kind, nested values, int64 beyond 2^53, repeated keys and empty values as the adapter does', () => {
    const json = {
      resourceLogs: [{ scopeLogs: [{ logRecords: [{
        timeUnixNano: '1790000000123456789',
        eventName: 'ml.params',
        attributes: [
          { key: 's', value: { stringValue: 'x' } },
          { key: 'b', value: { boolValue: true } },
          { key: 'i', value: { intValue: '42' } },
          { key: 'big', value: { intValue: '9007199254740993' } },
          { key: 'neg', value: { intValue: '-5' } },
          { key: 'd', value: { doubleValue: 0.25 } },
          { key: 'arr', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '1' }, { arrayValue: { values: [{ boolValue: false }] } }] } } },
          { key: 'kv', value: { kvlistValue: { values: [{ key: 'n', value: { doubleValue: 1.5 } }, { key: 'deep', value: { kvlistValue: { values: [{ key: 'z', value: { stringValue: 'q' } }] } } }] } } },
          { key: 'bytes', value: { bytesValue: Buffer.from('hi').toString('base64') } },
          { key: 'empty', value: {} },
          { key: 's', value: { stringValue: 'later wins' } },
        ],
      }, { observedTimeUnixNano: '1790000000999000000', attributes: [] }] }] }],
    };
    const body = codec.encodeRequest('logs', json);
    const fast = logInputsFromProtobuf(body);
    const adapter = logInputsFromOtlp(codec.decode('logs', 'protobuf', body));
    expect(fast).toEqual(adapter);
    expect(fast[0]!.attributes).toMatchObject({ s: 'later wins', b: true, i: 42, big: '9007199254740993', neg: -5, d: 0.25, arr: ['a', 1, [false]], kv: { n: 1.5, deep: { z: 'q' } } });
    expect(fast[0]!.attributes).not.toHaveProperty('empty');
    expect(fast[1]!.timeMillis).toBe(1_790_000_000_999);
  });

  it('turns nanoseconds into milliseconds exactly as [seconds, nanoseconds] do, for any fixed64', () => {
    let seed = 7;
    const random32 = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const cases: Array<[number, number]> = [[0, 1], [0, 999_999_999], [0, 1_000_000_000], [0xffffffff, 0xffffffff], [416_765_306, 0], [416_765_306, 4_294_967_295]];
    for (let i = 0; i < 2000; i++) cases.push([random32() % 0x20000000, random32()]);
    for (const [hi, lo] of cases) {
      const nanos = (BigInt(hi) << 32n) + BigInt(lo);
      expect(nanosToMillisParts(hi, lo), `${hi}:${lo}`).toBe(nanosToMillis(nanos.toString()));
    }
    expect(nanosToMillisParts(0, 0)).toBeUndefined();
  });

  it('answers a truncated or mistyped body with a decode error, never a partial result', () => {
    const { logs } = bodies('protobuf');
    for (const cut of [1, 7, Math.floor(logs.length / 2), logs.length - 1]) {
      expect(() => codec.decodeInputs('logs', 'protobuf', logs.subarray(0, cut)), `cut at ${cut}`).toThrow(/malformed OTLP\/protobuf logs request/);
    }
    // resource_logs (field 1) sent as a varint instead of a message
    expect(() => codec.decodeInputs('logs', 'protobuf', Buffer.from([0x08, 0x01]))).toThrow(/wire type 0, expected 2/);
  });
});
