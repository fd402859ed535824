// Shared by the tests against real services (Jaeger v2, otelcol-runtel, Prometheus): bounded
// polling, readers for Jaeger's query API and Prometheus's HTTP API, and an OTLP/HTTP sink.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { beforeAll } from 'vitest';

/**
 * A `beforeAll` whose failure (a service that is not provisioned, or does not start) fails every
 * test of the file: vitest would report them as skipped. Each test calls the returned `ready()` first.
 */
export function setupOrFail(fn: () => Promise<void>, timeoutMs?: number): () => void {
  let failure: Error | undefined;
  let done = false;
  beforeAll(async () => {
    try {
      await fn();
      done = true;
    } catch (error) {
      failure = error instanceof Error ? error : new Error(`setup failed: ${inspect(error)}`);
    }
  }, timeoutMs);
  return () => {
    if (failure !== undefined) throw failure;
    if (!done) throw new Error('setup did not complete');
  };
}

/**
 * Calls `probe` until it returns something other than undefined; throws after `timeoutMs`, naming
 * `what` (a function: evaluated then, so it can describe the last state seen) and the last error.
 */
export async function poll<T>(what: string | (() => string), probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : inspect(lastError)}`;
      throw new Error(`${typeof what === 'function' ? what() : what}: not reached within ${timeoutMs} ms${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

// ---- Jaeger query API v1 (/api/traces) ----

export interface JaegerTag {
  key: string;
  type: string;
  value: unknown;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; traceID: string; spanID: string }>;
  startTime: number;
  duration: number;
  tags: JaegerTag[];
  logs: Array<{ timestamp: number; fields: JaegerTag[] }>;
  processID: string;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
}

/** Every trace Jaeger has for `service` (v1 search API; Jaeger's default lookback and a large limit). */
export async function jaegerTraces(queryUrl: string, service: string): Promise<JaegerTrace[]> {
  const { status, body } = await getJson<{ data: JaegerTrace[] | null }>(`${queryUrl}/api/traces?service=${encodeURIComponent(service)}&limit=1000`);
  if (status !== 200) throw new Error(`jaeger /api/traces answered ${status}`);
  return body.data ?? [];
}

/** Polls until Jaeger has `spans` spans in total for `service` (spans arrive in batches), then returns its traces. */
export function jaegerTracesWithSpans(queryUrl: string, service: string, spans: number, timeoutMs = 30_000): Promise<JaegerTrace[]> {
  let seen = -1;
  return poll(
    () => `jaeger: ${spans} spans of service ${service} (last seen: ${seen})`,
    async () => {
      const traces = await jaegerTraces(queryUrl, service);
      seen = traces.reduce((n, t) => n + t.spans.length, 0);
      return seen >= spans ? traces : undefined;
    },
    timeoutMs,
  );
}

/** A span's tags as a key → {type, value} map (each key once). */
export function tagMap(tags: readonly JaegerTag[]): Map<string, { type: string; value: unknown }> {
  const out = new Map<string, { type: string; value: unknown }>();
  for (const tag of tags) {
    if (out.has(tag.key)) throw new Error(`tag ${tag.key} appears twice`);
    out.set(tag.key, { type: tag.type, value: tag.value });
  }
  return out;
}

/** The tags whose keys start with `prefix`, as plain key → value. */
export function tagsWithPrefix(tags: readonly JaegerTag[], prefix: string): Record<string, unknown> {
  return Object.fromEntries(tags.filter((t) => t.key.startsWith(prefix)).map((t) => [t.key, t.value]));
}

export function tagValue(span: JaegerSpan, key: string): unknown {
  return span.tags.find((t) => t.key === key)?.value;
}

/** The span's CHILD_OF parent span id, or undefined for a root span. */
export function parentOf(span: JaegerSpan): string | undefined {
  const refs = span.references.filter((r) => r.refType === 'CHILD_OF');
  if (refs.length > 1) throw new Error(`span ${span.spanID} has ${refs.length} CHILD_OF references`);
  return refs[0]?.spanID;
}

// ---- Prometheus HTTP API ----

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query (`/api/v1/query`): the vector result. */
export async function promQuery(url: string, query: string): Promise<PromSample[]> {
  const { status, body } = await getJson<{ status: string; data: { resultType: string; result: PromSample[] } }>(
    `${url}/api/v1/query?query=${encodeURIComponent(query)}`,
  );
  if (status !== 200 || body.status !== 'success') throw new Error(`prometheus query ${query} answered ${status} ${body.status}`);
  if (body.data.resultType !== 'vector') throw new Error(`prometheus query ${query}: result type ${body.data.resultType}`);
  return body.data.result;
}

/** Every metric name Prometheus knows (`/api/v1/label/__name__/values`). */
export async function promMetricNames(url: string): Promise<string[]> {
  const { body } = await getJson<{ data: string[] }>(`${url}/api/v1/label/__name__/values`);
  return body.data;
}

// ---- An OTLP/HTTP sink that also keeps the content encoding ----

export interface SinkRequest {
  path: string;
  contentType: string;
  /** The request's Content-Encoding header ('' when absent); `body` is already decompressed. */
  contentEncoding: string;
  body: Buffer;
}

export interface OtlpSink {
  readonly url: string;
  readonly requests: SinkRequest[];
  close(): Promise<void>;
}

/** Answers every POST with 200 (an empty Export*ServiceResponse in the request's content type), keeping the decompressed body. */
export async function startOtlpSink(): Promise<OtlpSink> {
  const requests: SinkRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const contentEncoding = String(req.headers['content-encoding'] ?? '');
      const raw = Buffer.concat(chunks);
      let body: Buffer;
      try {
        body = contentEncoding === 'gzip' ? gunzipSync(raw) : raw;
      } catch {
        res.writeHead(400).end();
        return;
      }
      const contentType = String(req.headers['content-type'] ?? '');
      requests.push({ path: req.url ?? '', contentType, contentEncoding, body });
      const json = contentType.includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
