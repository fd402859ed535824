// In-process OpenTelemetry pipelines for the OTel backend tests: every exporter keeps data in memory.

import { context } from '@opentelemetry/api';
import type { SpanContext } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanLimits } from '@opentelemetry/sdk-trace-base';
import { InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordLimits, LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import type { MetricData } from '@opentelemetry/sdk-metrics';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import { OtelLogger } from '../../src/otel/OtelLogger.js';
import type { OtelLoggerOptions } from '../../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../../src/otel/CountingBatchLogRecordProcessor.js';
import type { CountingBatchLogRecordProcessorOptions } from '../../src/otel/CountingBatchLogRecordProcessor.js';

let contextManagerInstalled = false;

/** An AsyncLocalStorage context manager, as NodeSDK installs one. */
export function installContextManager(): void {
  if (contextManagerInstalled) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerInstalled = true;
}

/** A metric reader the test collects from on demand. */
export class TestMetricReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  /** Every metric of the last collection, by name. */
  async metrics(): Promise<Map<string, MetricData>> {
    const { resourceMetrics } = await this.collect();
    const out = new Map<string, MetricData>();
    for (const scope of resourceMetrics.scopeMetrics) for (const metric of scope.metrics) out.set(metric.descriptor.name, metric);
    return out;
  }
}

export interface Pipelines {
  logger: OtelLogger;
  tracerProvider: BasicTracerProvider;
  loggerProvider: LoggerProvider;
  meterProvider: MeterProvider;
  spanExporter: InMemorySpanExporter;
  logExporter: InMemoryLogRecordExporter;
  processor: LogRecordProcessor;
  reader: TestMetricReader;
  spans(): ReadableSpan[];
  records(eventName?: string): ReadableLogRecord[];
  shutdown(): Promise<void>;
}

export interface PipelineOptions {
  logger?: OtelLoggerOptions;
  spanLimits?: SpanLimits;
  logRecordLimits?: LogRecordLimits;
  /** Default: a CountingBatchLogRecordProcessor on the in-memory exporter. */
  processor?: (exporter: InMemoryLogRecordExporter) => LogRecordProcessor;
  processorOptions?: Omit<CountingBatchLogRecordProcessorOptions, 'exporter'>;
}

export function pipelines(options: PipelineOptions = {}): Pipelines {
  installContextManager();
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(spanExporter)],
    ...(options.spanLimits ? { spanLimits: options.spanLimits } : {}),
  });
  const logExporter = new InMemoryLogRecordExporter();
  const processor = options.processor?.(logExporter) ?? new CountingBatchLogRecordProcessor({ ...options.processorOptions, exporter: logExporter });
  const loggerProvider = new LoggerProvider({ processors: [processor], ...(options.logRecordLimits ? { logRecordLimits: options.logRecordLimits } : {}) });
  const reader = new TestMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const delivery = processor instanceof CountingBatchLogRecordProcessor ? { delivery: processor } : {};
  const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, flushTimeoutMillis: 20_000, ...delivery, ...options.logger });
  return {
    logger,
    tracerProvider,
    loggerProvider,
    meterProvider,
    spanExporter,
    logExporter,
    processor,
    reader,
    spans: () => spanExporter.getFinishedSpans(),
    records: (eventName) => logExporter.getFinishedLogRecords().filter((r) => eventName === undefined || r.eventName === eventName),
    shutdown: async () => {
      await logger.shutdown();
      await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

export function spanByName(spans: readonly ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  if (found.length !== 1) throw new Error(`expected one span named ${name}, found ${found.length}`);
  return found[0]!;
}

export function sameSpan(a: SpanContext | undefined, b: SpanContext | undefined): boolean {
  return a !== undefined && b !== undefined && a.traceId === b.traceId && a.spanId === b.spanId;
}

export function millis(time: readonly [number, number]): number {
  return hrTimeToMilliseconds([time[0], time[1]]);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
