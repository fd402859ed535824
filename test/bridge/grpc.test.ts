// The bridge's OTLP/gRPC receiver, with a real gRPC client (@grpc/grpc-js): the same events as over
// HTTP, the token as `authorization` metadata, and the OTLP spec's codes for bad input — wrong
// token, garbage, oversized messages, back-pressure with RetryInfo — gzip, and a client that never
// finishes its message, each leaving the bridge serving.

import { connect, constants as h2 } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, Metadata, credentials, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import protobuf from 'protobufjs';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { BridgeOptions, RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { OtlpCodec } from '../../src/bridge/ingest/codec.js';
import { OTLP_DESCRIPTOR_ROOT } from '../../src/generated/otlp/descriptor.js';
import { RecordingBackend, loggedScenario, referenceEvents } from './helpers.js';

const codec = new OtlpCodec();
const root = protobuf.Root.fromJSON(OTLP_DESCRIPTOR_ROOT);
const bridges: RuntelBridge[] = [];
const clients: Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(bridges.splice(0).map((b) => b.close()));
});

const PATH = { logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export', traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export' } as const;

async function start(options: Partial<BridgeOptions> = {}): Promise<{ bridge: RuntelBridge; backend: RecordingBackend }> {
  const backend = new RecordingBackend();
  const bridge = await createBridge({ port: 0, grpcPort: 0, targets: [backend], log: () => undefined, finishSettleMillis: 0, ...options });
  bridges.push(bridge);
  return { bridge, backend };
}

function client(bridge: RuntelBridge, options: Record<string, unknown> = {}): Client {
  const c = new Client(`127.0.0.1:${bridge.grpcPort}`, credentials.createInsecure(), options);
  clients.push(c);
  return c;
}

/** One unary Export call with raw bytes; the answer, or the error with its trailers. */
function exportCall(c: Client, signal: keyof typeof PATH, body: Uint8Array, metadata = new Metadata()): Promise<{ response?: Buffer; error?: ServiceError }> {
  return new Promise((resolve) => {
    c.makeUnaryRequest(PATH[signal], (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b, body, metadata, (error, response) => resolve(error ? { error } : { response: response! }));
  });
}

function bearer(token: string): Metadata {
  const m = new Metadata();
  m.set('authorization', `Bearer ${token}`);
  return m;
}

describe('OTLP/gRPC', () => {
  it('takes logs and traces as OTLP/HTTP does, plain and gzip: the same run events reach the target', async () => {
    const scenario = await loggedScenario();
    const reference = referenceEvents(scenario);
    for (const gzip of [false, true]) {
      const { bridge, backend } = await start();
      const c = client(bridge, gzip ? { 'grpc.default_compression_algorithm': 2 } : {});
      const logs = await exportCall(c, 'logs', ProtobufLogsSerializer.serializeRequest(scenario.records)!);
      const traces = await exportCall(c, 'traces', ProtobufTraceSerializer.serializeRequest(scenario.spans)!);
      expect(logs.error).toBeUndefined();
      expect(traces.error).toBeUndefined();
      expect(codec.decodeResponse('logs', 'protobuf', logs.response!)).toEqual({});
      const events = backend.events.filter((e) => e.type !== 'tags' && e.type !== 'artifact');
      expect(events).toEqual([...reference.logs, ...reference.spans].filter((e) => e.type !== 'tags' && e.type !== 'artifact'));
      expect(bridge.stats().grpcResponses).toEqual({ OK: 2 });
    }
  });

  it('answers a wrong or missing token UNAUTHENTICATED, garbage INVALID_ARGUMENT, an oversized message RESOURCE_EXHAUSTED, and keeps serving', async () => {
    const { bridge, backend } = await start({ token: 's3cret-token-value', maxDecompressedBytes: 64 * 1024 });
    const c = client(bridge);
    const scenario = await loggedScenario();
    const valid = ProtobufLogsSerializer.serializeRequest(scenario.records)!;
    expect((await exportCall(c, 'logs', valid)).error?.code).toBe(status.UNAUTHENTICATED);
    expect((await exportCall(c, 'logs', valid, bearer('wrong'))).error?.code).toBe(status.UNAUTHENTICATED);
    const garbage = await exportCall(c, 'logs', Buffer.from([0x0a, 0x05, 0x01]), bearer('s3cret-token-value'));
    expect(garbage.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(garbage.error?.details).toMatch(/malformed OTLP\/protobuf logs request/);
    const oversized = await exportCall(c, 'logs', Buffer.alloc(200 * 1024, 0x0a), bearer('s3cret-token-value'));
    expect(oversized.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(backend.events).toEqual([]);
    const ok = await exportCall(c, 'logs', valid, bearer('s3cret-token-value'));
    expect(ok.error).toBeUndefined();
    expect(backend.events.length).toBeGreaterThan(0);
  });

  it('answers UNAVAILABLE with a RetryInfo while the targets are busy', async () => {
    const { bridge, backend } = await start({ maxQueuedPoints: 1000, retryAfterSeconds: 7 });
    backend.queuedPoints = 1000;
    const scenario = await loggedScenario();
    const busy = await exportCall(client(bridge), 'logs', ProtobufLogsSerializer.serializeRequest(scenario.records)!);
    expect(busy.error?.code).toBe(status.UNAVAILABLE);
    const details = busy.error!.metadata.get('grpc-status-details-bin')[0] as Buffer;
    const Status = root.lookupType('google.rpc.Status');
    const RetryInfo = root.lookupType('google.rpc.RetryInfo');
    const decoded = Status.toObject(Status.decode(details), { longs: Number }) as { code: number; details: Array<{ typeUrl: string; value: Uint8Array }> };
    expect(decoded.code).toBe(status.UNAVAILABLE);
    expect(decoded.details[0]!.typeUrl).toBe('type.googleapis.com/google.rpc.RetryInfo');
    expect(RetryInfo.toObject(RetryInfo.decode(decoded.details[0]!.value), { longs: Number })).toEqual({ retryDelay: { seconds: 7 } });
    expect(backend.events).toEqual([]);
  });

  it('cuts off a client that never finishes its message when its connection ages out, and keeps serving others', async () => {
    const { bridge } = await start({ grpcMaxConnectionAgeMillis: 500, grpcMaxConnectionAgeGraceMillis: 500 });
    const before = process.memoryUsage().rss;
    const session = connect(`http://127.0.0.1:${bridge.grpcPort}`);
    session.on('error', () => undefined);
    const closed: Array<Promise<number>> = [];
    for (let i = 0; i < 50; i++) {
      const stream = session.request({ [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: PATH.logs, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      stream.on('error', () => undefined);
      // A gRPC frame announcing 1000 bytes, of which 10 are sent, and the stream never ends.
      const frame = Buffer.alloc(15);
      frame.writeUInt32BE(1000, 1);
      stream.write(frame);
      closed.push(new Promise((resolve) => stream.on('close', () => resolve(Date.now()))));
    }
    const t0 = Date.now();
    // Meanwhile another client is served.
    const scenario = await loggedScenario();
    expect((await exportCall(client(bridge), 'logs', ProtobufLogsSerializer.serializeRequest(scenario.records)!)).error).toBeUndefined();
    const ends = await Promise.all(closed);
    expect(Math.max(...ends) - t0).toBeLessThan(5000);
    session.destroy();
    expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(64);
    expect((await exportCall(client(bridge), 'logs', ProtobufLogsSerializer.serializeRequest(scenario.records)!)).error).toBeUndefined();
  });
});
