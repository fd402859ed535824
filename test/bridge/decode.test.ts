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
import { logInputsFromOtlp, spanInputsFromOtlp } from '../../src/otel/translate/otlpInputs.js';
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
