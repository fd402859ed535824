// The bridge's HTTP answers, as the OTLP/HTTP spec wants them: 400 malformed, 401 token, 413 too
// large (a gzip bomb too, with memory staying bounded), 415 unknown content type or encoding, 503 +
// Retry-After while the senders' queues are full or a run's start is missing; partial success for
// rejected records; SDK differences (event.name attribute, int64 as strings) accepted.

import { createGzip, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { RuntelBridge, createBridge, isLoopbackHost } from '../../src/bridge/RuntelBridge.js';
import { artifactTagKey } from '../../src/bridge/ingest/artifacts.js';
import type { BridgeOptions } from '../../src/bridge/RuntelBridge.js';
import { OtlpCodec } from '../../src/bridge/ingest/codec.js';
import { JSON_TYPE, PROTOBUF, RecordingBackend, T0, get, jsonLogs, loggedScenario, post } from './helpers.js';

const codec = new OtlpCodec();
const bridges: RuntelBridge[] = [];

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
});

async function start(options: Partial<BridgeOptions> = {}): Promise<{ bridge: RuntelBridge; backend: RecordingBackend }> {
  const backend = new RecordingBackend();
  const bridge = await createBridge({ port: 0, targets: [backend], log: () => undefined, finishSettleMillis: 0, ...options });
  bridges.push(bridge);
  return { bridge, backend };
}

const RUN = 'a'.repeat(32);
const startRecord = { eventName: 'ml.run.start', attributes: { 'ml.run.id': { stringValue: RUN }, 'ml.run.name': { stringValue: 'r' }, 'ml.experiment.name': { stringValue: 'exp' } } };

function statusOf(body: Buffer, encoding: 'json' | 'protobuf' = 'json'): { code?: number; message?: string } {
  return codec.decodeStatus(encoding, body);
}

describe('status codes', () => {
  it('400 for bodies that do not decode (protobuf and JSON), with a google.rpc.Status in the request content type', async () => {
    const { bridge } = await start();
    const scenario = await loggedScenario();
    const valid = Buffer.from(ProtobufLogsSerializer.serializeRequest(scenario.records)!);
    const truncated = await post(`${bridge.url}/v1/logs`, valid.subarray(0, valid.length - 7), PROTOBUF);
    expect(truncated.status).toBe(400);
    expect(truncated.headers['content-type']).toBe('application/x-protobuf');
    expect(statusOf(truncated.body, 'protobuf')).toMatchObject({ code: 3, message: expect.stringContaining('malformed OTLP/protobuf logs request') as unknown });
    for (const body of ['{"resourceLogs":', '[1,2]', '{"resourceLogs":5}', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"x"}]}]}]}', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"k","value":{"intValue":"1.5e"}}]}]}]}]}']) {
      const response = await post(`${bridge.url}/v1/logs`, Buffer.from(body), JSON_TYPE);
      expect(response.status, body).toBe(400);
      expect(statusOf(response.body).code).toBe(3);
    }
    // Corrupt gzip.
    expect((await post(`${bridge.url}/v1/traces`, Buffer.from('not gzip at all'), { ...PROTOBUF, 'content-encoding': 'gzip' })).status).toBe(400);
    expect(bridge.stats().responses['400']).toBe(7);
  });

  it('415 for an unknown content type or encoding, 404 and 405 elsewhere', async () => {
    const { bridge } = await start();
    expect((await post(`${bridge.url}/v1/logs`, Buffer.from('x'), { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(`${bridge.url}/v1/logs`, Buffer.from('x'), {})).status).toBe(415);
    expect((await post(`${bridge.url}/v1/logs`, Buffer.from('{}'), { ...JSON_TYPE, 'content-encoding': 'br' })).status).toBe(415);
    expect((await post(`${bridge.url}/v1/nope`, Buffer.from('{}'), JSON_TYPE)).status).toBe(404);
    expect((await get(`${bridge.url}/v1/logs`)).status).toBe(405);
    // Media type parameters are fine.
    expect((await post(`${bridge.url}/v1/logs`, Buffer.from('{}'), { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
  });

  it('413 over the body limit, declared or streamed', async () => {
    const { bridge } = await start({ maxBodyBytes: 64 * 1024 });
    const declared = await post(`${bridge.url}/v1/logs`, Buffer.alloc(1 << 20), PROTOBUF);
    expect(declared.status).toBe(413);
    // Chunked (no content-length): counted while read.
    const chunked = await new Promise<number>((resolve, reject) => {
      import('node:http')
        .then(({ request }) => {
          const req = request(`${bridge.url}/v1/logs`, { method: 'POST', headers: { ...PROTOBUF, 'transfer-encoding': 'chunked' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', () => undefined);
          for (let i = 0; i < 32; i++) req.write(Buffer.alloc(8192));
          req.end();
        })
        .catch(reject);
    });
    expect(chunked).toBe(413);
    // Still serving.
    expect((await post(`${bridge.url}/v1/logs`, Buffer.from('{}'), JSON_TYPE)).status).toBe(200);
  });

  it('413 for a gzip bomb (256 MiB of zeros in about 250 KiB), and memory stays bounded', async () => {
    const { bridge } = await start({ maxDecompressedBytes: 8 << 20 });
    const gzip = createGzip({ level: 1 });
    const parts: Buffer[] = [];
    gzip.on('data', (c: Buffer) => parts.push(c));
    const done = new Promise((resolve) => gzip.on('end', resolve));
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < 256; i++) if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
    gzip.end();
    await done;
    const bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(4 << 20);
    global.gc?.();
    const before = process.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const responses = await Promise.all([0, 1, 2, 3].map(() => post(`${bridge.url}/v1/logs`, bomb, { ...PROTOBUF, 'content-encoding': 'gzip' })));
    clearInterval(sampler);
    for (const response of responses) {
      expect(response.status).toBe(413);
      expect(statusOf(response.body, 'protobuf').message).toContain('decompressed');
    }
    // Four bombs at once, each stopped at 8 MiB: far from the 1 GiB they would inflate to.
    expect(Math.max(peak, process.memoryUsage().rss) - before.rss).toBeLessThan(200 << 20);
  });

  it('401 without the right bearer token; the token is never echoed', async () => {
    const { bridge, backend } = await start({ token: 's3cret-token-value' });
    const body = jsonLogs([startRecord]);
    const none = await post(`${bridge.url}/v1/logs`, body, JSON_TYPE);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    const wrong = await post(`${bridge.url}/v1/logs`, body, { ...JSON_TYPE, authorization: 'Bearer s3cret-token-valuX' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.toString()).not.toContain('s3cret');
    expect(backend.events).toEqual([]);
    expect((await post(`${bridge.url}/v1/logs`, body, { ...JSON_TYPE, authorization: 'Bearer s3cret-token-value' })).status).toBe(200);
    expect(backend.events.map((e) => e.type)).toEqual(['run_started']);
    // Health endpoints need no token.
    expect((await get(`${bridge.url}/healthz`)).status).toBe(200);
  });

  it('refuses a non-loopback address without a token unless told to', () => {
    const targets = [new RecordingBackend()];
    expect(() => new RuntelBridge({ host: '0.0.0.0', targets, token: undefined, allowInsecure: false })).toThrow(/without a token/);
    expect(() => new RuntelBridge({ host: '0.0.0.0', targets, allowInsecure: true })).not.toThrow();
    expect(() => new RuntelBridge({ host: '0.0.0.0', targets, token: 't' })).not.toThrow();
    expect(isLoopbackHost('127.0.0.1') && isLoopbackHost('::1') && isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('10.0.0.1') || isLoopbackHost('::') || isLoopbackHost('example.org')).toBe(false);
    expect(() => new RuntelBridge({ targets: [] })).toThrow(/needs somewhere to send runs/);
  });

  it('503 + Retry-After while the senders queue too many points; /readyz says so', async () => {
    const { bridge, backend } = await start({ maxQueuedPoints: 1000, retryAfterSeconds: 7 });
    expect((await get(`${bridge.url}/readyz`)).status).toBe(200);
    backend.queuedPoints = 1000;
    const busy = await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord]), JSON_TYPE);
    expect(busy.status).toBe(503);
    expect(busy.headers['retry-after']).toBe('7');
    expect(statusOf(busy.body).code).toBe(14);
    const ready = await get(`${bridge.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body.toString())).toMatchObject({ status: 'busy' });
    expect(backend.events).toEqual([]);
    backend.queuedPoints = 10;
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord]), JSON_TYPE)).status).toBe(200);
    expect(backend.events).toHaveLength(1);
  });
});

describe('records from other SDKs', () => {
  it('takes the event name from an event.name attribute, and int64 steps as strings; doubles where ints belong', async () => {
    const { bridge, backend } = await start();
    const run = { 'ml.run.id': { stringValue: RUN } };
    const body = jsonLogs([
      { attributes: { ...startRecord.attributes, 'event.name': { stringValue: 'ml.run.start' }, 'ml.param.lr': { doubleValue: 0.1 }, 'ml.param.epochs': { intValue: '10' } } },
      { attributes: { ...run, 'event.name': { stringValue: 'ml.metric' }, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: '7' }, 'ml.metric.value': { doubleValue: 0.5 } } },
      { attributes: { ...run, 'event.name': { stringValue: 'ml.metric' }, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: 8 }, 'ml.metric.value': { intValue: '9007199254740993' } }, timeUnixNano: `${T0 + 1}000000` },
      { attributes: { ...run, 'event.name': { stringValue: 'ml.metric' }, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { doubleValue: 9 }, 'ml.metric.value': { doubleValue: 'NaN' } }, timeUnixNano: `${T0 + 2}000000` },
      { eventName: 'ml.run.end', attributes: { ...run, 'ml.run.status': { stringValue: 'killed' } }, timeUnixNano: Number(`${T0 + 3}000000`) },
    ]);
    const response = await post(`${bridge.url}/v1/logs`, body, JSON_TYPE);
    expect(response.status, response.body.toString()).toBe(200);
    expect(codec.decodeResponse('logs', 'json', response.body)).toEqual({});
    const events = backend.events;
    expect(events[0]).toMatchObject({ type: 'run_started', runId: RUN, name: 'r', experiment: 'exp', startTime: T0, params: { lr: '0.1', epochs: '10' } });
    const metrics = events.filter((e) => e.type === 'metrics');
    expect(metrics.map((e) => [e.step, e.values.loss])).toEqual([
      [7, 0.5],
      [8, 9007199254740993],
      [9, Number.NaN],
    ]);
    // A JSON number for nanoseconds is accepted; beyond 2^53 it is as exact as a double is.
    expect(events.at(-1)).toMatchObject({ type: 'run_finished', status: 'killed' });
    expect(Math.round((events.at(-1) as { endTime: number }).endTime)).toBe(T0 + 3);
  });

  it('answers partial success for rejected ml.* records, and ignores spans and logs without ml.* data', async () => {
    const { bridge, backend } = await start();
    const run = { 'ml.run.id': { stringValue: RUN } };
    const body = jsonLogs([
      startRecord,
      { eventName: 'ml.metric', attributes: { ...run, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: 1 } } }, // no value
      { eventName: 'ml.metric', attributes: { 'ml.metric.key': { stringValue: 'loss' } } }, // no run id
      { eventName: 'ml.run.end', attributes: { ...run, 'ml.run.status': { stringValue: 'bogus' } } },
      // A key MLflow refuses (it would fail the whole log-batch the valid points travel in).
      { eventName: 'ml.metric', attributes: { ...run, 'ml.metric.key': { stringValue: 'loss@val' }, 'ml.metric.step': { intValue: 1 }, 'ml.metric.value': { doubleValue: 1 } } },
      { eventName: 'http.request', attributes: { url: { stringValue: '/x' } } },
      { attributes: { message: { stringValue: 'plain log line' } } },
    ]);
    for (const encoding of ['json', 'protobuf'] as const) {
      const payload = encoding === 'json' ? body : Buffer.from(codec.encodeRequest('logs', JSON.parse(body.toString()) as Record<string, unknown>));
      const response = await post(`${bridge.url}/v1/logs`, payload, encoding === 'json' ? JSON_TYPE : PROTOBUF);
      expect(response.status).toBe(200);
      const decoded = codec.decodeResponse('logs', encoding, response.body) as { partialSuccess?: { rejectedLogRecords?: string; errorMessage?: string } };
      // The resent start is a duplicate, not a rejection; the four broken ml.* records are.
      expect(decoded.partialSuccess?.rejectedLogRecords).toBe('4');
      expect(decoded.partialSuccess?.errorMessage).toMatch(/4 ml\.\* log record/);
    }
    expect(backend.events.map((e) => e.type)).toEqual(['run_started']);
    const spans = Buffer.from(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', name: 'GET /', kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }] }));
    const response = await post(`${bridge.url}/v1/traces`, spans, JSON_TYPE);
    expect(response.status).toBe(200);
    expect(codec.decodeResponse('traces', 'json', response.body)).toEqual({});
    expect(backend.events).toHaveLength(1);
  });

  it('drops a param or tag key MLflow would refuse, keeps the rest of the record, and counts it', async () => {
    const { bridge, backend } = await start();
    const attributes = { ...startRecord.attributes, 'ml.param.lr': { stringValue: '0.1' }, 'ml.param.bad key!': { stringValue: 'x' }, 'ml.tag.../up': { stringValue: 'y' }, 'ml.tag.team': { stringValue: 'ml' } };
    const response = await post(`${bridge.url}/v1/logs`, jsonLogs([{ eventName: 'ml.run.start', attributes }]), JSON_TYPE);
    expect(response.status).toBe(200);
    expect(codec.decodeResponse('logs', 'json', response.body)).toEqual({});
    expect(backend.events).toEqual([expect.objectContaining({ type: 'run_started', params: { lr: '0.1' }, tags: { team: 'ml' } })]);
    expect(bridge.stats().droppedKeys).toBe(2);
  });

  it('accepts /v1/metrics and ignores it', async () => {
    const { bridge, backend } = await start();
    const body = Buffer.from(JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'ml.metric', gauge: { dataPoints: [{ asDouble: 1, timeUnixNano: '5' }, { asInt: '2' }] } }] }] }] }));
    const response = await post(`${bridge.url}/v1/metrics`, gzipSync(body), { ...JSON_TYPE, 'content-encoding': 'gzip' });
    expect(response.status).toBe(200);
    expect(bridge.stats().ignoredMetricDataPoints).toBe(2);
    expect(backend.events).toEqual([]);
  });
});

describe('run identity', () => {
  const metric = (step: number): { eventName: string; attributes: Record<string, unknown>; timeUnixNano: string } => ({
    eventName: 'ml.metric',
    attributes: { 'ml.run.id': { stringValue: RUN }, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: step }, 'ml.metric.value': { doubleValue: step / 10 } },
    timeUnixNano: `${T0 + step}000000`,
  });

  it('holds records of a run whose start has not arrived (503, Retry-After 1), then takes them once it has', async () => {
    const { bridge, backend } = await start({ orphanGraceMillis: 60_000 });
    const early = await post(`${bridge.url}/v1/logs`, jsonLogs([metric(1)]), JSON_TYPE);
    expect(early.status).toBe(503);
    expect(early.headers['retry-after']).toBe('1');
    expect(backend.events).toEqual([]);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord]), JSON_TYPE)).status).toBe(200);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(1)]), JSON_TYPE)).status).toBe(200);
    expect(backend.events.map((e) => e.type)).toEqual(['run_started', 'metrics']);
  });

  it('finds a run it has not seen start through the run finders (a restarted bridge asking MLflow)', async () => {
    const asked: string[] = [];
    const { bridge, backend } = await start({
      orphanGraceMillis: 60_000,
      runFinders: [(id) => (asked.push(id), Promise.resolve(id === RUN ? { name: 'found', experiment: 'found-exp' } : undefined))],
    });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(2)]), JSON_TYPE)).status).toBe(200);
    expect(asked).toEqual([RUN]);
    expect(backend.events[0]).toMatchObject({ type: 'run_started', runId: RUN, name: 'found', experiment: 'found-exp', startTime: T0 + 2 });
  });

  it('after the grace period takes the records of a run whose start never came', async () => {
    const { bridge, backend } = await start({ orphanGraceMillis: 300 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(3)]), JSON_TYPE)).status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(3)]), JSON_TYPE)).status).toBe(200);
    expect(backend.events[0]).toMatchObject({ type: 'run_started', runId: RUN, experiment: 'default' });
    expect(backend.events[1]).toMatchObject({ type: 'metrics', step: 3 });
  });
});

describe('artifact tags', () => {
  it('makes artifact names safe MLflow tag keys', () => {
    expect(artifactTagKey('models/model')).toBe('runtel.artifact.models/model');
    expect(artifactTagKey('../../etc/passwd')).toBe('runtel.artifact.etc/passwd');
    expect(artifactTagKey('a b/c@d.txt')).toBe('runtel.artifact.a b/c_d.txt');
    expect(artifactTagKey('x'.repeat(400)).length).toBe(250);
  });
});

describe("a run's end waits for its last records", () => {
  const run = { 'ml.run.id': { stringValue: RUN } };
  const metric = (step: number) => ({ eventName: 'ml.metric', timeUnixNano: `${T0 + step}000000`, attributes: { ...run, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: String(step) }, 'ml.metric.value': { doubleValue: step } } });
  const end = { eventName: 'ml.run.end', timeUnixNano: `${T0 + 100}000000`, attributes: { ...run, 'ml.run.status': { stringValue: 'success' } } };
  const order = (backend: RecordingBackend): string[] => backend.events.map((e) => (e.type === 'metrics' ? `metrics@${e.step}` : e.type));

  it('records arriving after the end (another pipeline, another consumer) are forwarded before it; the end follows within the window', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 300 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), end]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0']);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(1)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1']);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'run_finished']);
    // A record later than the window is still forwarded (never dropped), after the end.
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(2)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'run_finished', 'metrics@2']);
  });

  // ml.run.metric_records_count: the ml.metric and ml.system records the run emitted before its end.
  const countedEnd = (count: number) => ({ ...end, attributes: { ...end.attributes, 'ml.run.metric_records_count': { intValue: String(count) } } });

  it('an end that counts its records is forwarded once they have all arrived, without waiting out the window', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 60_000 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), metric(1), countedEnd(2)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'run_finished']);
  });

  it('a counted end waits for the records still missing; a resent record does not count twice', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 60_000 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), countedEnd(3)]), JSON_TYPE)).status).toBe(200);
    // The same request again (a retry), then one of the two missing records.
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), countedEnd(3)]), JSON_TYPE)).status).toBe(200);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(1), metric(0)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1']);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(2)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'metrics@2', 'run_finished']);
  });

  it('a run with more points than de-duplication remembers is counted too: its end does not wait out the window', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 60_000, maxSeenPointsPerRun: 2 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), metric(1), metric(2), countedEnd(3)]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'metrics@2', 'run_finished']);
    expect(bridge.stats().rememberedPoints).toBe(2);
  });

  it('a request not acknowledged in time gets 503, its data goes on; a run it may resend past the memory then waits out the window', async () => {
    // A target that acknowledges nothing until told to: the request's data is taken but not delivered within ackTimeoutMillis.
    let deliver!: () => void;
    const delivered = new Promise<boolean>((resolve) => (deliver = () => resolve(true)));
    const backend = Object.assign(new RecordingBackend(), { position: () => 1, whenDelivered: () => delivered });
    const bridge = await createBridge({ port: 0, targets: [backend], log: () => undefined, finishSettleMillis: 400, ackTimeoutMillis: 1000, maxSeenPointsPerRun: 2 });
    bridges.push(bridge);
    const first = await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), metric(1), metric(2)]), JSON_TYPE);
    expect(first.status).toBe(503);
    expect(statusOf(first.body).code).toBe(14);
    expect(bridge.stats().ackTimeouts).toBe(1);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'metrics@2']);
    deliver();
    // The Collector resends it: metric 2, past the memory, is forwarded and would count again. With the
    // end saying 4 (one record still on its way), counting it twice would let the end go before metric 3.
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), metric(1), metric(2)]), JSON_TYPE)).status).toBe(200);
    // The end's request is answered once the end is forwarded.
    const ended = post(`${bridge.url}/v1/logs`, jsonLogs([countedEnd(4)]), JSON_TYPE);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'metrics@2', 'metrics@2']);
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([metric(3)]), JSON_TYPE)).status).toBe(200);
    expect((await ended).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'metrics@1', 'metrics@2', 'metrics@2', 'metrics@3', 'run_finished']);
  });

  it('a bad count (not a non-negative integer) is ignored: the end waits out the window as without one', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 300 });
    const bad = { ...end, attributes: { ...end.attributes, 'ml.run.metric_records_count': { stringValue: 'many' } } };
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), bad]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0']);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'run_finished']);
    expect(bridge.stats().rejectedLogRecords).toBe(0);
  });

  it('close() forwards a held end at once', async () => {
    const { bridge, backend } = await start({ finishSettleMillis: 60_000 });
    expect((await post(`${bridge.url}/v1/logs`, jsonLogs([startRecord, metric(0), end]), JSON_TYPE)).status).toBe(200);
    expect(order(backend)).toEqual(['run_started', 'metrics@0']);
    const t0 = Date.now();
    await bridge.close();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(order(backend)).toEqual(['run_started', 'metrics@0', 'run_finished']);
  });
});

describe('shutdown', () => {
  it('close() does not wait for a keep-alive connection whose request was in flight when it was called', async () => {
    const { bridge } = await start();
    const { Agent, request } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = jsonLogs([startRecord]);
    // A request whose body is still arriving when close() is called (as a Collector's may be).
    const answered = new Promise<number>((resolve, reject) => {
      const req = request(`${bridge.url}/v1/logs`, { method: 'POST', agent, headers: { ...JSON_TYPE, 'content-length': String(body.length) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 10));
      setTimeout(() => req.end(body.subarray(10)), 300);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const t0 = Date.now();
    const closed = bridge.close();
    expect(await answered).toBe(200);
    await closed;
    // Not the 95 s keep-alive timeout: the connection is closed once its request is answered.
    expect(Date.now() - t0).toBeLessThan(5_000);
    agent.destroy();
  });
});
