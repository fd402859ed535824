// Shared by the deployment tests: running a command, the collector-config environment, and an
// OTLP/HTTP JSON sink that stands in for the runtel bridge (it decodes what the collector's
// `otlphttp` exporter sends with `encoding: json`, and can answer 503 to simulate an outage).

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { cacheDir, freePort } from '../services/index.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const COLLECTOR_CONFIG_DIR = join(REPO_ROOT, 'collector-config');

/** The Python of the examples/python venv (provisioned by scripts/provision-example.sh). */
export function examplePython(): string {
  const python = join(cacheDir(), 'venv-example', 'bin', 'python');
  try {
    accessSync(python, constants.X_OK);
  } catch {
    throw new Error(`the example venv is not provisioned (expected ${python}): run \`bash scripts/provision-example.sh\` first`);
  }
  return python;
}

/**
 * With examples/python/runtel_otel.py, in the example venv: a run `parent` (with `params`, a Python
 * literal) and a nested run `child` whose block runs `childLines` (Python statements using `child`)
 * and then raises ValueError("diverged"). Returns their runtel ids.
 */
export async function runFailingPythonRuns(env: NodeJS.ProcessEnv, experiment: string, params: string, childLines: string[]): Promise<{ parent: string; child: string }> {
  const script = [
    'import json',
    'from runtel_otel import RuntelOtel',
    `otel = RuntelOtel(experiment=${JSON.stringify(experiment)})`,
    'ids = {}',
    'try:',
    `    with otel.start_run("parent", params=${params}) as parent:`,
    '        ids["parent"] = parent.id',
    '        with otel.start_run("child", parent=parent) as child:',
    '            ids["child"] = child.id',
    ...childLines.map((line) => `            ${line}`),
    '            raise ValueError("diverged")',
    'except ValueError:',
    '    pass',
    'otel.shutdown()',
    'print(json.dumps(ids))',
  ].join('\n');
  const result = await runCommand(examplePython(), ['-c', script], { cwd: join(REPO_ROOT, 'examples/python'), env, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`the failing-run script exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { parent: string; child: string };
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell); never rejects for a non-zero exit, only for a spawn error or the timeout. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${options.timeoutMs ?? 60_000} ms; stderr:\n${Buffer.concat(err).toString()}`));
    }, options.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

/** The environment collector-config/{agent,gateway}.yaml read, on free loopback ports. */
export interface CollectorEnv {
  env: Record<string, string>;
  otlpHttpUrl: string;
  otlpGrpcPort: number;
  prometheusExporterUrl: string;
  healthUrl: string;
}

export async function collectorEnv(p: { jaegerEndpoint: string; bridgeUrl: string; token: string; fileStorageDir?: string }): Promise<CollectorEnv> {
  const ports = new Set<number>();
  while (ports.size < 5) ports.add(await freePort());
  const [grpc, http, prom, health, telemetry] = [...ports] as [number, number, number, number, number];
  return {
    env: {
      OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
      OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
      JAEGER_ENDPOINT: p.jaegerEndpoint,
      PROMETHEUS_EXPORTER_ENDPOINT: `127.0.0.1:${prom}`,
      BRIDGE_ENDPOINT: p.bridgeUrl,
      BRIDGE_ENCODING: 'json',
      RUNTEL_BRIDGE_TOKEN: p.token,
      HEALTH_CHECK_ENDPOINT: `127.0.0.1:${health}`,
      OTELCOL_TELEMETRY_HOST: '127.0.0.1',
      OTELCOL_TELEMETRY_PORT: String(telemetry),
      ...(p.fileStorageDir !== undefined ? { FILE_STORAGE_DIR: p.fileStorageDir } : {}),
    },
    otlpHttpUrl: `http://127.0.0.1:${http}`,
    otlpGrpcPort: grpc,
    prometheusExporterUrl: `http://127.0.0.1:${prom}/metrics`,
    healthUrl: `http://127.0.0.1:${health}/`,
  };
}

// ---- OTLP/JSON decoding ----------------------------------------------------------------------

export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };

interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
  bytesValue?: string;
}
interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}

export function anyValue(v: OtlpAnyValue | undefined): AttrValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.kvlistValue !== undefined) return attributes(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return null;
}

export function attributes(kvs: readonly OtlpKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) {
    if (kv.key in out) throw new Error(`attribute ${kv.key} appears twice`);
    out[kv.key] = anyValue(kv.value);
  }
  return out;
}

export interface SinkSpan {
  resource: Record<string, AttrValue>;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttrValue>;
  status: { code: number; message: string };
  events: Array<{ name: string; attributes: Record<string, AttrValue> }>;
}

export interface SinkLogRecord {
  resource: Record<string, AttrValue>;
  scope: string;
  timeUnixNano: bigint;
  /** The OTLP `eventName` field ('' when absent). */
  eventName: string;
  severityNumber: number;
  hasBody: boolean;
  traceId: string;
  spanId: string;
  attributes: Record<string, AttrValue>;
}

export interface JsonSink {
  readonly url: string;
  /** HTTP status the sink answers with (200 by default; 503 simulates a bridge outage). */
  status: number;
  /** Every request seen (including refused ones): path, content type and headers. */
  readonly requests: Array<{ path: string; status: number; headers: IncomingHttpHeaders }>;
  /** Spans and log records from accepted requests, in arrival order. */
  readonly spans: SinkSpan[];
  readonly logs: SinkLogRecord[];
  close(): Promise<void>;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- OTLP/JSON is walked structurally */
function decodeTraces(body: any, spans: SinkSpan[]): void {
  for (const rs of body.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          resource,
          scope: String(ss.scope?.name ?? ''),
          traceId: String(s.traceId ?? ''),
          spanId: String(s.spanId ?? ''),
          parentSpanId: String(s.parentSpanId ?? ''),
          name: String(s.name ?? ''),
          kind: Number(s.kind ?? 0),
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attributes(s.attributes),
          status: { code: Number(s.status?.code ?? 0), message: String(s.status?.message ?? '') },
          events: (s.events ?? []).map((e: any) => ({ name: String(e.name ?? ''), attributes: attributes(e.attributes) })),
        });
      }
    }
  }
}

function decodeLogs(body: any, logs: SinkLogRecord[]): void {
  for (const rl of body.resourceLogs ?? []) {
    const resource = attributes(rl.resource?.attributes);
    for (const sl of rl.scopeLogs ?? []) {
      for (const r of sl.logRecords ?? []) {
        logs.push({
          resource,
          scope: String(sl.scope?.name ?? ''),
          timeUnixNano: BigInt(r.timeUnixNano ?? 0),
          eventName: String(r.eventName ?? ''),
          severityNumber: Number(r.severityNumber ?? 0),
          hasBody: r.body !== undefined && r.body !== null && Object.keys(r.body).length > 0,
          traceId: String(r.traceId ?? ''),
          spanId: String(r.spanId ?? ''),
          attributes: attributes(r.attributes),
        });
      }
    }
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** An OTLP/HTTP sink on 127.0.0.1 that accepts JSON only (answers 415 to anything else). */
export async function startJsonSink(): Promise<JsonSink> {
  const sink = {
    url: '',
    status: 200,
    requests: [] as JsonSink['requests'],
    spans: [] as SinkSpan[],
    logs: [] as SinkLogRecord[],
    close: (): Promise<void> => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const reply = (status: number, body = '{}'): void => {
        sink.requests.push({ path, status, headers: req.headers });
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      };
      if (sink.status !== 200) return reply(sink.status);
      if (!String(req.headers['content-type'] ?? '').includes('application/json')) return reply(415);
      let parsed: unknown;
      try {
        const raw = Buffer.concat(chunks);
        parsed = JSON.parse((req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8'));
      } catch {
        return reply(400);
      }
      if (path === '/v1/traces') decodeTraces(parsed, sink.spans);
      else if (path === '/v1/logs') decodeLogs(parsed, sink.logs);
      else if (path !== '/v1/metrics') return reply(404);
      return reply(200);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return sink;
}
