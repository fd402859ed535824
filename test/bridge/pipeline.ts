// The real pipeline for the end-to-end bridge tests: OtelLogger (OTLP/HTTP protobuf exporters) →
// otelcol-runtel (otlp receiver → batch → otlphttp exporter, protobuf + gzip, with retry_on_failure
// and a sending queue) → the bridge → MLflow.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OtelLogger } from '../../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../../src/otel/CountingBatchLogRecordProcessor.js';
import type { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import { freePort, startForwardingCollector } from '../services/index.js';
import type { CollectorHandle } from '../services/index.js';
import { poll } from '../otel/real/util.js';
import { get } from './helpers.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

/** `runtel bridge serve` as users run it: the built CLI (npm test builds before vitest) in a child process. */
export interface BridgeProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts the bridge CLI on `port` (0: a free one) with `env` over a clean environment (no W&B, no
 * token unless given), and waits for /readyz.
 */
export async function startBridgeProcess(port: number, env: Record<string, string>, args: string[] = []): Promise<BridgeProcess> {
  if (port === 0) port = await freePort();
  const child = spawn(process.execPath, [CLI, 'bridge', 'serve', '--port', String(port), ...args], {
    env: { ...process.env, WANDB_API_KEY: '', RUNTEL_BRIDGE_TOKEN: '', MLFLOW_TRACKING_URI: '', RUNTEL_BRIDGE_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c.toString()));
  child.stderr.on('data', (c: Buffer) => chunks.push(c.toString()));
  const output = (): string => chunks.join('');
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const url = `http://127.0.0.1:${port}`;
  await poll(
    () => `the bridge on port ${port} (output: ${output().slice(-500)})`,
    async () => {
      if (child.exitCode !== null) throw new Error(`bridge exited with ${child.exitCode}: ${output().slice(-1000)}`);
      return (await get(`${url}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined;
    },
    30_000,
    100,
  );
  return {
    child,
    url,
    output,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A collector whose logs and traces pipelines forward to `bridgeUrl`; returns it and its OTLP/HTTP base URL. */
export function startBridgeCollector(bridgeUrl: string, encoding: 'proto' | 'json' = 'proto'): Promise<{ collector: CollectorHandle; otlpUrl: string }> {
  // otlp_http: protobuf (its default) or JSON, gzip (its default). Several consumers: batches may arrive out of order.
  return startForwardingCollector(bridgeUrl, {
    batchYaml: '{ timeout: 200ms }',
    exporterYaml: `    encoding: ${encoding}
    retry_on_failure: { enabled: true, initial_interval: 500ms, max_interval: 2s, max_elapsed_time: 300s }
    sending_queue: { enabled: true, num_consumers: 4, queue_size: 5000 }`,
  });
}

export interface Emitter {
  logger: OtelLogger;
  processor: CountingBatchLogRecordProcessor;
  shutdown(): Promise<void>;
}

/** runtel's OtelLogger with startOtel-style providers, exporting OTLP/HTTP protobuf to `otlpUrl`. */
export function otelEmitter(otlpUrl: string, serviceName: string): Emitter {
  const resource = resourceFromAttributes({ 'service.name': serviceName });
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlpUrl}/v1/traces` }), { scheduledDelayMillis: 200 })],
  });
  const processor = new CountingBatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${otlpUrl}/v1/logs` }), scheduledDelayMillis: 200 });
  const loggerProvider = new LoggerProvider({ resource, processors: [processor] });
  const meterProvider = new MeterProvider({ resource });
  const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, delivery: processor, exclusiveProcessor: processor, flushTimeoutMillis: 60_000 });
  return {
    logger,
    processor,
    shutdown: async () => {
      await logger.shutdown();
      await Promise.all([tracerProvider.forceFlush(), loggerProvider.forceFlush()]);
      await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

/** Every run (any lifecycle) of an experiment carrying `runtel.run_id` = `runtelId`. */
export async function mlflowRunsFor(client: MlflowClient, experiment: string, runtelId: string): Promise<MlflowRun[]> {
  const id = await client.getExperimentIdByName(experiment);
  if (id === undefined) return [];
  return client.searchRuns([id], `tags.\`runtel.run_id\` = '${runtelId}'`, 'ALL');
}

export function tagsOf(run: MlflowRun): Record<string, string> {
  return Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
}

export function paramsOf(run: MlflowRun): Record<string, string> {
  return Object.fromEntries((run.data.params ?? []).map((t) => [t.key, t.value]));
}

/** Runs tagged `runtel.run_id` = `runtelId` in every experiment of the server (any lifecycle): a duplicate anywhere shows here. */
export async function runsTaggedAnywhere(client: MlflowClient, trackingUri: string, runtelId: string): Promise<MlflowRun[]> {
  const res = await fetch(`${trackingUri}/api/2.0/mlflow/experiments/search`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ max_results: 1000, view_type: 'ALL' }),
  });
  const { experiments } = (await res.json()) as { experiments?: Array<{ experiment_id: string }> };
  const ids = (experiments ?? []).map((e) => e.experiment_id);
  return ids.length === 0 ? [] : client.searchRuns(ids, `tags.\`runtel.run_id\` = '${runtelId}'`, 'ALL');
}
