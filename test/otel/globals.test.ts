// The default path for apps with their own OpenTelemetry setup: OtelLogger uses the global providers.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { metrics, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { backendsFromEnv, createLoggerFromEnv } from '../../src/backends/createLoggerFromEnv.js';
import { withRun } from '../../src/core/context.js';
import { OtelLogger } from '../../src/otel/OtelLogger.js';
import { globalOtelProviders } from '../../src/otel/globals.js';
import { TestMetricReader, installContextManager, sameSpan } from './helpers.js';
import { startOtlpSink } from './real/util.js';

const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, backends: process.env.RUNTEL_BACKENDS };
afterAll(() => {
  for (const [key, value] of [['OTEL_EXPORTER_OTLP_ENDPOINT', saved.endpoint], ['RUNTEL_BACKENDS', saved.backends]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe('OtelLogger on global providers', () => {
  it('warns when the app registered no providers, instead of dropping data silently', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const logger = new OtelLogger({ onError: (failure) => lines.push(`${failure.operation}: ${String(failure.error)}`) });
    const run = logger.startRun({ name: 'nowhere' });
    await run.finish();
    await logger.shutdown();
    spy.mockRestore();
    expect(lines.some((l) => l.startsWith('setup:') && l.includes('no global OpenTelemetry TracerProvider (runs as spans), MeterProvider (dashboard gauges), LoggerProvider (metric points and run records)'))).toBe(true);
    expect(lines.some((l) => l.startsWith('delivery:') && l.includes('no CountingBatchLogRecordProcessor exists'))).toBe(true);
  });

  it("uses the app's providers, does not start its own and does not shut the app's down", async () => {
    installContextManager();
    const spanExporter = new InMemorySpanExporter();
    const logExporter = new InMemoryLogRecordExporter();
    const reader = new TestMetricReader();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
    const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logExporter })] });
    trace.setGlobalTracerProvider(tracerProvider);
    logs.setGlobalLoggerProvider(loggerProvider);
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    expect(globalOtelProviders()).toEqual({ traces: true, metrics: true, logs: true });

    const sink = await startOtlpSink();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = sink.url;
    process.env.RUNTEL_BACKENDS = 'otel';
    expect(backendsFromEnv()).toEqual(['otel']);
    const logger = createLoggerFromEnv({ flushTimeoutMillis: 20_000 });
    await withRun(logger, { name: 'app-run' }, (run) => run.logMetrics({ loss: 1 }));
    await logger.shutdown();
    await sink.close();

    expect(sink.requests).toEqual([]); // no SDK of its own
    const span = spanExporter.getFinishedSpans().find((s) => s.name === 'app-run')!;
    const point = logExporter.getFinishedLogRecords().find((r) => r.eventName === 'ml.metric')!;
    expect(sameSpan(point.spanContext, span.spanContext())).toBe(true);
    const collected = await reader.metrics();
    expect(collected.get('ml.runs')?.dataPoints).toHaveLength(1);
    // The app's providers still work after the logger shut down.
    trace.getTracer('app').startSpan('after').end();
    expect(spanExporter.getFinishedSpans().some((s) => s.name === 'after')).toBe(true);
  });
});
