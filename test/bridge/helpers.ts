// Shared by the bridge tests: a recording RunBackend, a scenario logged through the real OTel JS
// SDK (OtelLogger → in-memory exporters), and small HTTP helpers.

import { request } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { RunBackend } from '../../src/core/RunBackend.js';
import type { RunEvent } from '../../src/core/events.js';
import { OtelRunTranslator } from '../../src/otel/translate/OtelRunTranslator.js';
import { fromReadableLogRecord, fromReadableSpan } from '../../src/otel/translate/inputs.js';
import { pipelines } from '../otel/helpers.js';

/** Keeps every event; its queue length is whatever the test sets. */
export class RecordingBackend implements RunBackend {
  readonly name = 'recording';
  readonly events: RunEvent[] = [];
  queuedPoints = 0;
  onEvent(event: RunEvent): void {
    this.events.push(event);
  }
  stats(): { queuedPoints: number } {
    return { queuedPoints: this.queuedPoints };
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Scenario {
  records: ReadableLogRecord[];
  spans: ReadableSpan[];
  runIds: { parent: string; child: string };
  artifact: { name: string; path: string };
}

export const T0 = 1_790_000_000_123;

/**
 * A parent run with config and tags, metrics including NaN, ±Infinity, 1e300, 2^60 and a
 * fractional-millisecond timestamp, a nested child that fails, params and tags logged later, and
 * an artifact: logged by OtelLogger through the real SDK, kept in memory.
 */
export async function loggedScenario(experiment = 'bridge-unit'): Promise<Scenario> {
  const otel = pipelines();
  const dir = mkdtempSync(join(tmpdir(), 'runtel-bridge-art-'));
  const artifactPath = join(dir, 'weights.bin');
  writeFileSync(artifactPath, Buffer.from('runtel bridge artifact'));
  const parent = otel.logger.startRun({ name: 'parent', experiment, config: { lr: 0.1, layers: [64, 32], opt: { name: 'adam' } }, tags: { team: 'ml' } });
  parent.logMetrics({ loss: Number.NaN, acc: 0.5, big: 2 ** 60, inf: Infinity, ninf: -Infinity, huge: 1e300 }, { step: 0, timestamp: T0 });
  parent.logMetrics({ loss: 0.25, acc: 0.75 }, { step: 1, timestamp: T0 + 1000.5 });
  const child = otel.logger.startRun({ name: 'child', experiment, parent });
  child.logParams({ extra: 'x', n: 3 });
  child.setTags({ stage: 'trial' });
  for (let step = 0; step < 20; step++) child.logMetrics({ loss: 1 / (step + 1) }, { step, timestamp: T0 + 2000 + step });
  await child.finish('failed', new TypeError('boom'));
  parent.logArtifact(artifactPath, { name: 'models/weights.bin' });
  await parent.finish('success');
  await otel.logger.forceFlush();
  const records = otel.records();
  const spans = otel.spans();
  const runIds = { parent: parent.id, child: child.id };
  await otel.shutdown();
  return { records, spans, runIds, artifact: { name: 'models/weights.bin', path: artifactPath } };
}

/** What the translator makes of the SDK's own objects: the reference every decoded path must match. */
export function referenceEvents(scenario: Scenario): { logs: RunEvent[]; spans: RunEvent[] } {
  const translator = new OtelRunTranslator();
  const logs = translator.logs(scenario.records.map(fromReadableLogRecord));
  const spans = translator.spans(scenario.spans.map(fromReadableSpan));
  return { logs, spans };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** POST with node:http (so an early answer to a large upload is still read). */
export function post(url: string, body: Buffer | Uint8Array, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-length': String(body.length), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    // The server may answer and close before the whole body is written (413, 401): that is fine.
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
    });
    req.end(body);
  });
}

export function get(url: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

export const PROTOBUF = { 'content-type': 'application/x-protobuf' };
export const JSON_TYPE = { 'content-type': 'application/json' };

/** An OTLP/JSON logs request of hand-written records (as other SDKs write them). */
export function jsonLogs(records: Array<{ eventName?: string; timeUnixNano?: string | number; attributes: Record<string, unknown> }>): Buffer {
  return Buffer.from(
    JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'other-sdk' } }] },
          scopeLogs: [
            {
              scope: { name: 'other' },
              logRecords: records.map((r) => ({
                ...(r.eventName !== undefined ? { eventName: r.eventName } : {}),
                timeUnixNano: r.timeUnixNano ?? `${T0}000000`,
                attributes: Object.entries(r.attributes).map(([key, value]) => ({ key, value })),
              })),
            },
          ],
        },
      ],
    }),
  );
}
