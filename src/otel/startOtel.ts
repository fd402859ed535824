// startOtel: OpenTelemetry for apps that have none, built from the standard OTEL_* environment with
// NodeSDK and the OTLP/HTTP exporters (JSON or protobuf), with runtel's counting log processor.

import { diag } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { LogRecordExporter } from '@opentelemetry/sdk-logs';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import type { Logger } from '../core/types.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { getNumberFromEnv, getStringFromEnv } from '../core/env.js';
import { CountingBatchLogRecordProcessor } from './CountingBatchLogRecordProcessor.js';
import type { CountingBatchLogRecordProcessorOptions, DeliveryStats, DeliveryStatsSource } from './CountingBatchLogRecordProcessor.js';
import { OtelLogger } from './OtelLogger.js';
import { noGlobalOtelProviders } from './globals.js';

export type OtlpHttpProtocol = 'http/json' | 'http/protobuf';

export interface StartOtelOptions {
  /**
   * The resource's `service.name` (the "service" Jaeger groups traces by). Default: env
   * `OTEL_SERVICE_NAME`, else a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else env
   * `RUNTEL_EXPERIMENT`, else `"runtel"`.
   */
  serviceName?: string;
  /** For every signal. Default: env `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`. */
  protocol?: OtlpHttpProtocol;
  /** Replace the OTLP exporters (tests, or a custom transport). */
  traceExporter?: SpanExporter;
  metricExporter?: PushMetricExporter;
  logExporter?: LogRecordExporter;
  /** Default: env `OTEL_METRIC_EXPORT_INTERVAL`, else 15000 (the SDK's 60 s is long for a training dashboard). */
  metricExportIntervalMillis?: number;
  /** Queue and batch sizes of the log record processor. */
  logRecordProcessor?: Omit<CountingBatchLogRecordProcessorOptions, 'exporter'>;
}

/** What `startOtel` started: flush it, read its delivery counts, shut it down (which flushes). */
export interface OtelHandle extends DeliveryStatsSource {
  readonly sdk: NodeSDK;
  readonly logRecordProcessor: CountingBatchLogRecordProcessor;
  /** The `service.name` chosen, or undefined when `OTEL_RESOURCE_ATTRIBUTES` supplies it. */
  readonly serviceName: string | undefined;
  forceFlush(): Promise<void>;
  /** Flushes and shuts every provider down. Idempotent. */
  shutdown(): Promise<void>;
}

type Signal = 'TRACES' | 'METRICS' | 'LOGS';

function protocolFor(signal: Signal, option: OtlpHttpProtocol | undefined): OtlpHttpProtocol {
  const chosen = option ?? getStringFromEnv(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (chosen === 'http/json' || chosen === 'http/protobuf') return chosen;
  process.stderr.write(`runtel: otel: OTLP protocol ${JSON.stringify(chosen)} is not supported by startOtel (http/json or http/protobuf); using http/protobuf\n`);
  return 'http/protobuf';
}

function serviceNameFromResourceEnv(): string | undefined {
  const raw = getStringFromEnv('OTEL_RESOURCE_ATTRIBUTES');
  if (raw === undefined) return undefined;
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === 'service.name') {
      try {
        return decodeURIComponent(pair.slice(eq + 1).trim()) || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The `service.name` startOtel sets (undefined: leave it to `OTEL_RESOURCE_ATTRIBUTES`). */
export function defaultServiceName(option?: string): string | undefined {
  if (option !== undefined) return option;
  const fromEnv = getStringFromEnv('OTEL_SERVICE_NAME');
  if (fromEnv !== undefined) return fromEnv;
  if (serviceNameFromResourceEnv() !== undefined) return undefined;
  return getStringFromEnv('RUNTEL_EXPERIMENT') ?? 'runtel';
}

/**
 * Builds tracer, meter and logger providers from the standard environment (`OTEL_EXPORTER_OTLP_ENDPOINT`
 * and the signal-specific endpoints, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) with NodeSDK and registers them globally, with an
 * async-hooks context manager. Log records go through a CountingBatchLogRecordProcessor.
 */
export function startOtel(options: StartOtelOptions = {}): OtelHandle {
  if (!noGlobalOtelProviders()) {
    process.stderr.write('runtel: otel: startOtel(): OpenTelemetry providers are already registered globally; the ones registered first stay in use\n');
  }
  const json = (signal: Signal): boolean => protocolFor(signal, options.protocol) === 'http/json';
  const traceExporter = options.traceExporter ?? (json('TRACES') ? new JsonTraceExporter() : new ProtoTraceExporter());
  const metricExporter = options.metricExporter ?? (json('METRICS') ? new JsonMetricExporter() : new ProtoMetricExporter());
  const logExporter = options.logExporter ?? (json('LOGS') ? new JsonLogExporter() : new ProtoLogExporter());

  const interval = options.metricExportIntervalMillis ?? getNumberFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 15_000;
  const timeout = Math.min(getNumberFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000, interval);
  const spanProcessor = new BatchSpanProcessor(traceExporter);
  const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: interval, exportTimeoutMillis: timeout });
  const logRecordProcessor = new CountingBatchLogRecordProcessor({ ...options.logRecordProcessor, exporter: logExporter });
  const serviceName = defaultServiceName(options.serviceName);

  const sdk = new NodeSDK({
    ...(serviceName !== undefined ? { serviceName } : {}),
    spanProcessors: [spanProcessor],
    metricReaders: [metricReader],
    logRecordProcessors: [logRecordProcessor],
    instrumentations: [],
  });
  sdk.start();

  let shutdown: Promise<void> | undefined;
  return {
    sdk,
    logRecordProcessor,
    serviceName,
    forceFlush: async () => {
      await Promise.all([spanProcessor.forceFlush(), metricReader.forceFlush(), logRecordProcessor.forceFlush()]);
    },
    shutdown: () => {
      shutdown ??= sdk.shutdown().catch((error: unknown) => diag.error('runtel: OpenTelemetry SDK shutdown failed', error));
      return shutdown;
    },
    deliveryStats: (): DeliveryStats => logRecordProcessor.deliveryStats(),
  };
}

/** Whether the environment names an OTLP endpoint (general or signal-specific). */
export function otlpEndpointConfigured(): boolean {
  return ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT'].some(
    (name) => getStringFromEnv(name) !== undefined,
  );
}

/**
 * The `otel` backend of `createLoggerFromEnv`: an OtelLogger on the app's global providers, or,
 * when the app registered none, on providers from `startOtel()` that shut down with the logger.
 */
export function createOtelLoggerFromEnv(options: BackendLoggerOptions = {}): Logger {
  if (!noGlobalOtelProviders()) return new OtelLogger(options);
  const handle = startOtel();
  return new OtelLogger({ ...options, ownedSdk: handle, delivery: handle, exclusiveProcessor: handle.logRecordProcessor });
}
