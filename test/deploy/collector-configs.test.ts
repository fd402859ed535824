// The collector configs in collector-config/ against the real collector build (otelcol-runtel):
// `validate --config` for every config (agent, gateway, load balancing, bridge sidecar), with the
// docker-compose defaults and with a test environment; and the gateway started for real: its
// file_storage queue directory is created, it is healthy, and a batch the bridge refused survives
// a collector restart. (loadbalancing.yaml runs for real in loadbalancing.test.ts.)
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { requireBinary, startCollector } from '../services/index.js';
import type { CollectorHandle } from '../services/index.js';
import { poll } from '../otel/real/util.js';
import { COLLECTOR_CONFIG_DIR, collectorEnv, runCommand, startJsonSink } from './helpers.js';
import type { JsonSink } from './helpers.js';

const VALIDATED = ['agent.yaml', 'gateway.yaml', 'loadbalancing.yaml', 'bridge-sidecar.yaml'] as const;
const configPath = (name: string): string => join(COLLECTOR_CONFIG_DIR, name);

const tmp = mkdtempSync(join(tmpdir(), 'runtel-deploy-collector-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The environment without any variable the configs read, so their defaults apply. */
function withoutConfigEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const file of VALIDATED) {
    for (const m of readFileSync(configPath(file), 'utf8').matchAll(/\$\{env:([A-Z0-9_]+)/g)) delete env[m[1]!];
  }
  return env;
}

async function validate(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const result = await runCommand(requireBinary('otelcol-runtel'), ['validate', `--config=${file}`], { env, timeoutMs: 60_000 });
  return { code: result.code, output: result.stdout + result.stderr };
}

describe('otelcol-runtel validate', () => {
  it.each(VALIDATED)('%s validates with the docker-compose defaults', async (file) => {
    const { code, output } = await validate(configPath(file), withoutConfigEnv());
    expect(output).not.toMatch(/error/i);
    expect(code).toBe(0);
  });

  it.each(VALIDATED)('%s validates with a test environment (loopback, free ports)', async (file) => {
    const ce = await collectorEnv({ jaegerEndpoint: '127.0.0.1:14317', bridgeUrl: 'http://127.0.0.1:14320', token: 't0k3n', fileStorageDir: join(tmp, 'validate-queue') });
    const { code, output } = await validate(configPath(file), { ...withoutConfigEnv(), ...ce.env, SIDECAR_OTLP_GRPC_ENDPOINT: '127.0.0.1:14318' });
    expect(output).not.toMatch(/error/i);
    expect(code).toBe(0);
  });

  it('every config sends traces and logs to the bridge with retry_on_failure and a sending_queue', () => {
    for (const file of ['agent.yaml', 'gateway.yaml', 'bridge-sidecar.yaml']) {
      const cfg = parse(readFileSync(configPath(file), 'utf8'));
      const bridge = cfg.exporters['otlp_http/bridge'];
      expect(bridge.retry_on_failure).toMatchObject({ enabled: true, max_elapsed_time: 0 });
      expect(bridge.sending_queue.enabled).toBe(true);
      expect(cfg.service.pipelines.traces.exporters).toContain('otlp_http/bridge');
      expect(cfg.service.pipelines.logs.exporters).toContain('otlp_http/bridge');
    }
    const gateway = parse(readFileSync(configPath('gateway.yaml'), 'utf8'));
    expect(gateway.exporters['otlp_http/bridge'].sending_queue.storage).toBe('file_storage/queue');
    expect(gateway.exporters['otlp_grpc/jaeger'].sending_queue.storage).toBe('file_storage/queue');
    expect(gateway.service.extensions).toContain('file_storage/queue');
  });

  it('loadbalancing.yaml routes traces and logs by service.name (one key for both signals) over OTLP/gRPC to a list of bridges, with the token', () => {
    const cfg = parse(readFileSync(configPath('loadbalancing.yaml'), 'utf8'));
    const lb = cfg.exporters['load_balancing/bridges'];
    expect(lb.routing_key).toBe('attributes');
    expect(lb.routing_attributes).toEqual(['service.name']);
    expect(Object.keys(lb.protocol)).toEqual(['otlp']);
    expect(lb.retry_on_failure).toMatchObject({ enabled: true, max_elapsed_time: 0 });
    expect(lb.resolver.static.hostnames).toBe('${env:BRIDGES:-[bridge-1:4317, bridge-2:4317]}');
    expect(lb.protocol.otlp.headers.authorization).toBe('Bearer ${env:RUNTEL_BRIDGE_TOKEN:-}');
    // Above the bridge's answer bound (8 s): a slow delivery is answered 503, not cut off.
    expect(lb.protocol.otlp.timeout).toBe('15s');
    expect(cfg.service.pipelines.traces.exporters).toContain('load_balancing/bridges');
    expect(cfg.service.pipelines.logs.exporters).toEqual(['load_balancing/bridges']);
  });
});

describe('gateway.yaml on a real collector', () => {
  let collector: CollectorHandle | undefined;
  let sink: JsonSink | undefined;
  afterAll(async () => {
    await collector?.stop();
    await sink?.close();
  });

  it('creates its file_storage queue directory, is healthy, and a batch refused by the bridge survives a restart', async () => {
    sink = await startJsonSink();
    const queueDir = join(tmp, 'gateway', 'queue'); // neither folder exists yet: create_directory
    // Jaeger is not running: its queue holds the spans too, which is fine here.
    const ce = await collectorEnv({ jaegerEndpoint: '127.0.0.1:1', bridgeUrl: sink.url, token: 'gw-token', fileStorageDir: queueDir });
    collector = await startCollector(readFileSync(configPath('gateway.yaml'), 'utf8'), { env: ce.env, readyUrl: ce.healthUrl });

    expect(statSync(queueDir).isDirectory()).toBe(true);
    const health = await fetch(ce.healthUrl);
    expect(health.status).toBe(200);
    // One queue file per exporter and signal that uses the storage.
    const files = readdirSync(queueDir);
    expect(files.some((f) => f.includes('otlp_http') && f.includes('bridge') && f.includes('logs')), files.join(', ')).toBe(true);
    expect(files.some((f) => f.includes('otlp_http') && f.includes('bridge') && f.includes('traces')), files.join(', ')).toBe(true);

    // The bridge is down (503: retryable): a run's span and its ml.run.end record are accepted
    // by the collector and queued on disk.
    sink.status = 503;
    const traceId = '5b8efff798038103d269b633813fc60c';
    const spanId = 'eee19b7ec3c1b174';
    const runId = 'a'.repeat(32);
    const now = BigInt(Date.now()) * 1_000_000n;
    const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'gateway-test' } }] };
    const traces = await fetch(`${ce.otlpHttpUrl}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceSpans: [
          {
            resource,
            scopeSpans: [
              {
                scope: { name: 'runtel' },
                spans: [
                  {
                    traceId,
                    spanId,
                    name: 'queued-run',
                    kind: 1,
                    startTimeUnixNano: String(now - 1_000_000_000n),
                    endTimeUnixNano: String(now),
                    attributes: [{ key: 'ml.run.id', value: { stringValue: runId } }],
                    status: { code: 1 },
                  },
                ],
              },
            ],
          },
        ],
      }),
    });
    expect(traces.status).toBe(200);
    const logs = await fetch(`${ce.otlpHttpUrl}/v1/logs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceLogs: [
          {
            resource,
            scopeLogs: [
              {
                scope: { name: 'runtel' },
                logRecords: [
                  {
                    timeUnixNano: String(now),
                    eventName: 'ml.run.end',
                    traceId,
                    spanId,
                    attributes: [
                      { key: 'ml.run.id', value: { stringValue: runId } },
                      { key: 'ml.run.status', value: { stringValue: 'success' } },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      }),
    });
    expect(logs.status).toBe(200);
    // The collector tried (and was refused) for both signals.
    await poll(
      () => `the gateway's attempts on /v1/traces and /v1/logs (seen: ${sink!.requests.map((r) => `${r.path} ${r.status}`).join(', ')})`,
      () => {
        const paths = new Set(sink!.requests.filter((r) => r.status === 503).map((r) => r.path));
        return Promise.resolve(paths.has('/v1/traces') && paths.has('/v1/logs') ? true : undefined);
      },
      20_000,
    );
    expect(sink.spans).toHaveLength(0);

    // Restart the collector (graceful stop, same config and queue directory), then the bridge recovers.
    await collector.restart();
    sink.status = 200;
    await poll(
      () => `the queued span and record after the restart (spans ${sink!.spans.length}, records ${sink!.logs.length})`,
      () => Promise.resolve(sink!.spans.length >= 1 && sink!.logs.length >= 1 ? true : undefined),
      30_000,
    );
    expect(sink.spans.map((s) => [s.traceId, s.spanId, s.name, s.attributes['ml.run.id']])).toEqual([[traceId, spanId, 'queued-run', runId]]);
    expect(sink.logs.map((r) => [r.eventName, r.traceId, r.attributes['ml.run.status']])).toEqual([['ml.run.end', traceId, 'success']]);
    expect(sink.requests.filter((r) => r.status === 200).every((r) => r.headers.authorization === 'Bearer gw-token')).toBe(true);
    expect(existsSync(queueDir)).toBe(true);
  }, 120_000);
});
