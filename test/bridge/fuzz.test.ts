// 10,000 broken bodies against a running bridge: no crash, no 5xx, every body that cannot be a
// valid request answered 4xx, memory bounded, and valid data sent in between still forwarded.
//
// How the bodies are made (a seeded PRNG, so every run sends the same 10,000):
// - from valid requests written by the real OTel JS serializers (logs and traces, protobuf and
//   JSON) of the scenario in helpers.ts:
//   - truncation at a random length;
//   - 1–8 random bit flips;
//   - JSON with wrong shapes: a list where an object belongs and the reverse, strings where numbers
//     belong, two values in one AnyValue, negative or fractional nanoseconds, …;
//   - the protobuf body labelled as JSON;
// - random bytes (0–4 KiB) as protobuf or JSON;
// - gzip: random bytes gzipped (a valid gzip stream of garbage), and gzip streams cut short or
//   with bits flipped;
// - bodies over the size limit and unknown content types.
// Bodies that *must* be invalid (JSON cut short, random bytes as JSON, the wrong shapes, protobuf
// labelled JSON, oversized, unknown type) must get 4xx. Mutated protobuf and bit-flipped JSON or
// gzip can still be valid (protobuf skips unknown fields, a flipped digit is still a number, a
// flipped gzip mtime is still gzip): those may get 200, and are then simply data.

import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonLogsSerializer, JsonTraceSerializer, ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { JSON_TYPE, PROTOBUF, RecordingBackend, T0, jsonLogs, loggedScenario, post } from './helpers.js';

const CASES = 10_000;
const VALID_EVERY = 250;

/** mulberry32 */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  kind: string;
  path: string;
  body: Buffer;
  headers: Record<string, string>;
  /** The body cannot be a valid request. */
  strict: boolean;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

let bridge: RuntelBridge | undefined;
afterAll(async () => {
  await bridge?.close();
});

describe('fuzzing the receiver', () => {
  it(`answers ${CASES} broken bodies with 4xx (or 200 when still valid), never crashes, and still forwards valid data`, async () => {
    const scenario = await loggedScenario('bridge-fuzz');
    const seeds = {
      logsProto: Buffer.from(ProtobufLogsSerializer.serializeRequest(scenario.records)!),
      tracesProto: Buffer.from(ProtobufTraceSerializer.serializeRequest(scenario.spans)!),
      logsJson: Buffer.from(JsonLogsSerializer.serializeRequest(scenario.records)!),
      tracesJson: Buffer.from(JsonTraceSerializer.serializeRequest(scenario.spans)!),
    };
    const rand = prng(20261126);
    const int = (n: number): number => Math.floor(rand() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
    const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
    const flip = (body: Buffer): Buffer => {
      const out = Buffer.from(body);
      for (let i = 0, n = 1 + int(8); i < n; i++) out[int(out.length)]! ^= 1 << int(8);
      return out;
    };
    const seedFor = (json: boolean): { path: string; body: Buffer } => {
      const logs = rand() < 0.7;
      return { path: logs ? '/v1/logs' : '/v1/traces', body: json ? (logs ? seeds.logsJson : seeds.tracesJson) : logs ? seeds.logsProto : seeds.tracesProto };
    };

    // Wrong shapes: each edit makes the request invalid whatever else it holds.
    const wrongShapes: Array<(o: { [key: string]: Json }) => void> = [
      (o) => (o.resourceLogs = pick([5, 'x', true, { a: 1 }])),
      (o) => (first(o).scopeLogs = pick([7, 'scope'])),
      (o) => (record(o).attributes = pick(['attrs', 3, { key: 'k' }])),
      (o) => (attribute(o).value = pick<Json>([{ intValue: 'abc' }, { stringValue: 5 }, { boolValue: 'yes' }, { doubleValue: 'fast' }, { intValue: 1.5 }, { stringValue: 'a', intValue: 1 }, [1]])),
      (o) => (record(o).timeUnixNano = pick<Json>(['soon', -1, 1.5, '1e400', [], {}])),
      (o) => (record(o).eventName = pick<Json>([12, [], {}, true])),
      (o) => (attribute(o).key = pick<Json>([1, [], {}])),
      (o) => (first(o).scopeLogs = [pick<Json>([1, 'x', [[]]])]),
    ];
    function first(o: { [key: string]: Json }): { [key: string]: Json } {
      return (o.resourceLogs as Json[])[0] as { [key: string]: Json };
    }
    function record(o: { [key: string]: Json }): { [key: string]: Json } {
      const logs = ((first(o).scopeLogs as Json[])[0] as { logRecords: Json[] }).logRecords;
      return logs[int(logs.length)] as { [key: string]: Json };
    }
    function attribute(o: { [key: string]: Json }): { [key: string]: Json } {
      const attrs = record(o).attributes as Json[];
      return attrs[int(attrs.length)] as { [key: string]: Json };
    }

    const makers: Array<() => Case> = [
      () => {
        const s = seedFor(true);
        return { kind: 'json-truncated', path: s.path, body: s.body.subarray(0, int(s.body.length - 1)), headers: JSON_TYPE, strict: true };
      },
      () => {
        const s = seedFor(false);
        return { kind: 'proto-truncated', path: s.path, body: s.body.subarray(0, int(s.body.length)), headers: PROTOBUF, strict: false };
      },
      () => {
        const s = seedFor(false);
        return { kind: 'proto-flipped', path: s.path, body: flip(s.body), headers: PROTOBUF, strict: false };
      },
      () => {
        const s = seedFor(true);
        return { kind: 'json-flipped', path: s.path, body: flip(s.body), headers: JSON_TYPE, strict: false };
      },
      () => {
        const o = JSON.parse(seeds.logsJson.toString()) as { [key: string]: Json };
        pick(wrongShapes)(o);
        return { kind: 'json-wrong-shape', path: '/v1/logs', body: Buffer.from(JSON.stringify(o)), headers: JSON_TYPE, strict: true };
      },
      () => ({ kind: 'random-as-json', path: pick(['/v1/logs', '/v1/traces', '/v1/metrics']), body: randomBytes(int(4096)), headers: JSON_TYPE, strict: true }),
      () => ({ kind: 'random-as-proto', path: pick(['/v1/logs', '/v1/traces', '/v1/metrics']), body: randomBytes(int(4096)), headers: PROTOBUF, strict: false }),
      () => ({ kind: 'gzip-of-garbage', path: '/v1/logs', body: gzipSync(randomBytes(1 + int(4096))), headers: { ...pick([PROTOBUF, JSON_TYPE]), 'content-encoding': 'gzip' }, strict: false }),
      () => {
        const s = seedFor(false);
        const gz = gzipSync(s.body);
        const broken = rand() < 0.5 ? gz.subarray(0, 10 + int(gz.length - 11)) : flip(gz);
        return { kind: 'gzip-broken', path: s.path, body: broken, headers: { ...PROTOBUF, 'content-encoding': 'gzip' }, strict: false };
      },
      () => {
        const s = seedFor(false);
        return { kind: 'proto-labelled-json', path: s.path, body: s.body, headers: JSON_TYPE, strict: true };
      },
    ];
    const cases: Case[] = [];
    for (let i = 0; i < CASES; i++) {
      if (i % 500 === 17) cases.push({ kind: 'oversized', path: '/v1/logs', body: Buffer.alloc((1 << 20) + 1), headers: PROTOBUF, strict: true });
      else if (i % 500 === 42) cases.push({ kind: 'unknown-type', path: '/v1/logs', body: seeds.logsJson, headers: { 'content-type': pick(['text/plain', 'application/xml', 'application/grpc']) }, strict: true });
      else cases.push(pick(makers)());
    }

    const backend = new RecordingBackend();
    bridge = await createBridge({ port: 0, targets: [backend], log: () => undefined, maxBodyBytes: 1 << 20, orphanGraceMillis: 0 });
    const url = bridge.url;

    const statuses = new Map<string, Map<number, number>>();
    const failures: string[] = [];
    const validRuns: string[] = [];
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < cases.length) {
        const i = next++;
        const c = cases[i]!;
        if (i % VALID_EVERY === 0) {
          // Valid data in between: a whole run in one request.
          const runId = (i.toString(16) + 'f'.repeat(32)).slice(0, 32);
          validRuns.push(runId);
          const id = { 'ml.run.id': { stringValue: runId } };
          const records = [
            { eventName: 'ml.run.start', attributes: { ...id, 'ml.run.name': { stringValue: `valid-${i}` }, 'ml.experiment.name': { stringValue: 'fuzz' } } },
            ...[0, 1, 2, 3, 4].map((step) => ({
              eventName: 'ml.metric',
              attributes: { ...id, 'ml.metric.key': { stringValue: 'loss' }, 'ml.metric.step': { intValue: step }, 'ml.metric.value': { doubleValue: step + 0.5 } },
              timeUnixNano: `${T0 + step}000000`,
            })),
            { eventName: 'ml.run.end', attributes: { ...id, 'ml.run.status': { stringValue: 'success' } }, timeUnixNano: `${T0 + 10}000000` },
          ];
          const gzip = rand() < 0.5;
          const ok = await post(`${url}/v1/logs`, gzip ? gzipSync(jsonLogs(records)) : jsonLogs(records), gzip ? { ...JSON_TYPE, 'content-encoding': 'gzip' } : JSON_TYPE).catch((e: Error) => ({
            status: -1,
            body: Buffer.from(e.message),
          }));
          if (ok.status !== 200) failures.push(`valid run ${i}: ${ok.status} ${ok.body.toString().slice(0, 200)}`);
        }
        let status: number;
        try {
          status = (await post(`${url}${c.path}`, c.body, c.headers)).status;
        } catch (error) {
          status = -1;
          failures.push(`${c.kind} #${i}: ${(error as Error).message}`);
        }
        const byKind = statuses.get(c.kind) ?? new Map<number, number>();
        byKind.set(status, (byKind.get(status) ?? 0) + 1);
        statuses.set(c.kind, byKind);
        const allowed = c.strict ? status >= 400 && status < 500 : status === 200 || (status >= 400 && status < 500);
        if (!allowed) failures.push(`${c.kind} #${i}: ${status}`);
        if (i % 200 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const elapsed = performance.now() - started;
    const summary = [...statuses].map(([kind, m]) => `${kind}: ${[...m].map(([s, n]) => `${s}×${n}`).join(' ')}`).join('; ');
    console.log(`[bridge fuzz] ${CASES} bodies in ${Math.round(elapsed)} ms; ${summary}; RSS +${Math.round((rssPeak - rssBefore) / 2 ** 20)} MiB`);

    expect(failures.slice(0, 20)).toEqual([]);
    const total = [...statuses.values()].reduce((n, m) => n + [...m.values()].reduce((a, b) => a + b, 0), 0);
    expect(total).toBe(CASES);
    const fourxx = [...statuses.values()].reduce((n, m) => n + [...m].filter(([s]) => s >= 400 && s < 500).reduce((a, [, c]) => a + c, 0), 0);
    expect(fourxx).toBeGreaterThan(CASES * 0.8);
    // The bridge still works, and every valid run sent in between arrived whole (ends included:
    // flush() forwards the ones it is still holding for late records).
    await bridge.flush();
    expect(validRuns.length).toBe(CASES / VALID_EVERY);
    for (const runId of validRuns) {
      const events = backend.events.filter((e) => e.runId === runId);
      expect(events.filter((e) => e.type === 'run_started'), runId).toHaveLength(1);
      expect(events.flatMap((e) => (e.type === 'metrics' ? [e.step] : [])).sort()).toEqual([0, 1, 2, 3, 4]);
      expect(events.filter((e) => e.type === 'run_finished')).toHaveLength(1);
    }
    expect(rssPeak - rssBefore).toBeLessThan(400 << 20);
  }, 180_000);
});
