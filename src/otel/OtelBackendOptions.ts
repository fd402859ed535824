// Options of the OTel backend (OtelBackend.ts) and of OtelLogger.

import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import type { LoggerProvider } from '@opentelemetry/api-logs';
import type { CountingBatchLogRecordProcessor, DeliveryStats, DeliveryStatsSource } from './CountingBatchLogRecordProcessor.js';

export interface OtelBackendOptions {
  /** Default: the global tracer provider (`trace.getTracerProvider()`), resolved at the first run. */
  tracerProvider?: TracerProvider;
  /** Default: the global meter provider, resolved at the first run. */
  meterProvider?: MeterProvider;
  /** Default: the global logger provider (`logs.getLoggerProvider()`), resolved at the first run. */
  loggerProvider?: LoggerProvider;
  /**
   * The span attribute count limit the tracer provider applies, so runtel decides what to keep.
   * Default: env `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, else `OTEL_ATTRIBUTE_COUNT_LIMIT`, else 128 (the SDK's rules).
   */
  spanAttributeCountLimit?: number;
  /**
   * The log record attribute count limit of the logger provider; params and tags are split over
   * several records to fit. Default: env `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, else
   * `OTEL_ATTRIBUTE_COUNT_LIMIT`, else 128.
   */
  logRecordAttributeCountLimit?: number;
  /** Runs per process whose metrics the `ml.metric` and `ml.run.step` gauges carry. Default: 64. */
  maxGaugeRuns?: number;
  /** Metric keys per run the `ml.metric` gauge carries (the first ones logged). Default: 30. */
  maxGaugeKeysPerRun?: number;
  /** Also write the event name as an `event.name` attribute (for pipelines older than OTLP's `event_name` field). Default: false. */
  eventNameAttribute?: boolean;
  /** Where undelivered log records are counted. Default: every CountingBatchLogRecordProcessor in the process. */
  delivery?: DeliveryStatsSource;
  /**
   * The logger provider's only processor (as `startOtel` sets it up). When it has no room, metric
   * points are counted as dropped without building a record the processor would refuse, which keeps
   * CPU and memory flat while the backend is unreachable. Leave unset when the provider has other processors.
   */
  exclusiveProcessor?: CountingBatchLogRecordProcessor;
  /**
   * Called at a run's finish (and at shutdown) when more records went undelivered since the last
   * call. Default: one warning line on stderr.
   */
  onUndelivered?: (undelivered: number, stats: DeliveryStats) => void;
  /**
   * A running run that emitted nothing for this long emits an `ml.run.heartbeat` record, so a
   * consumer (the bridge) can tell a quiet run from a dead one. Default: env
   * `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000; a value that is not a number above 0 is an error.
   */
  heartbeatIntervalMillis?: number;
  /** Providers runtel started itself (`startOtel`): shut down with the backend. */
  ownedSdk?: { shutdown(): Promise<void> };
}

