// Benchmark (not a test): `npx tsx bench/otel-hot-path.ts` (add `--expose-gc` before the path for steadier figures).
//
// 1. Hot path: per point, `run.logMetrics({ loss }, { step })` through OtelLogger against the raw
//    OpenTelemetry calls that carry the same data (one `logger.emit` with the same attributes and one
//    `gauge.record`), in the same process, on the same providers, with exporters that do no I/O.
//    Target: ≤ 1.2× raw.
// 2. Memory: 1,000,000 points with the OTLP endpoint unreachable (exporters aimed at a closed
//    loopback port): RSS growth (target ≤ 100 MB) and the count of undelivered points reported.

import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { OtelLogger } from '../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../src/otel/CountingBatchLogRecordProcessor.js';
import { startOtel } from '../src/otel/startOtel.js';

const gc = (globalThis as { gc?: () => void }).gc;

class NullLogExporter implements LogRecordExporter {
  exported = 0;
  export(logs: ReadableLogRecord[], done: (result: ExportResult) => void): void {
    this.exported += logs.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

class NullSpanExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

class IdleReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function hotPath(): Promise<number> {
  const logExporter = new NullLogExporter();
  const processor = new CountingBatchLogRecordProcessor({ exporter: logExporter });
  const loggerProvider = new LoggerProvider({ processors: [processor] });
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new NullSpanExporter())] });
  const reader = new IdleReader();
  const meterProvider = new MeterProvider({ readers: [reader] });

  const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, delivery: processor });
  const run = logger.startRun({ name: 'bench', experiment: 'bench' });

  // The raw calls carrying the same data, on the same providers.
  const rawLogger = loggerProvider.getLogger('raw');
  const gauge = meterProvider.getMeter('raw').createGauge('raw.ml.metric');
  const span = tracerProvider.getTracer('raw').startSpan('raw-run', {}, ROOT_CONTEXT);
  const ctx = trace.setSpan(ROOT_CONTEXT, span);
  const runId = run.id;
  const gaugeAttrs: Attributes = { 'ml.metric.key': 'loss', 'ml.run.id': runId, 'ml.run.name': 'bench', 'ml.experiment.name': 'bench' };

  let step = 0;
  const ours = (n: number): void => {
    for (let i = 0; i < n; i++, step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
  };
  const raw = (n: number): void => {
    for (let i = 0; i < n; i++, step++) {
      const value = 1 / (step + 1);
      rawLogger.emit({
        eventName: 'ml.metric',
        timestamp: Date.now(),
        context: ctx,
        attributes: { 'ml.metric.key': 'loss', 'ml.metric.value': value, 'ml.metric.step': step, 'ml.run.id': runId },
      });
      gauge.record(value, gaugeAttrs);
    }
  };

  const emitOnly = (n: number): void => {
    for (let i = 0; i < n; i++, step++) {
      rawLogger.emit({
        eventName: 'ml.metric',
        timestamp: Date.now(),
        context: ctx,
        attributes: { 'ml.metric.key': 'loss', 'ml.metric.value': 1 / (step + 1), 'ml.metric.step': step, 'ml.run.id': runId },
      });
    }
  };

  const perRound = 100_000;
  const measure = async (fn: (n: number) => void): Promise<number> => {
    await processor.forceFlush();
    gc?.();
    const start = process.hrtime.bigint();
    fn(perRound);
    const elapsed = Number(process.hrtime.bigint() - start);
    return elapsed / perRound;
  };

  // Warm up both paths, then alternate rounds so drift hits both alike.
  for (let i = 0; i < 3; i++) {
    await measure(ours);
    await measure(raw);
  }
  const oursNs: number[] = [];
  const rawNs: number[] = [];
  const emitNs: number[] = [];
  for (let i = 0; i < 15; i++) {
    oursNs.push(await measure(ours));
    rawNs.push(await measure(raw));
    emitNs.push(await measure(emitOnly));
  }
  await run.finish();
  span.end();
  await logger.shutdown();
  await Promise.all([loggerProvider.shutdown(), tracerProvider.shutdown(), meterProvider.shutdown()]);

  const ratio = median(oursNs) / median(rawNs);
  console.log('hot path (per point, median of 15 rounds x 100,000 points)');
  console.log(`  OtelLogger run.logMetrics({ loss }, { step }): ${median(oursNs).toFixed(0)} ns`);
  console.log(`  raw logger.emit + gauge.record:               ${median(rawNs).toFixed(0)} ns`);
  console.log(`  ratio: ${ratio.toFixed(2)}x (target <= 1.20x)  ${ratio <= 1.2 ? 'OK' : 'MISSED'}`);
  console.log(`  for reference, logger.emit alone: ${median(emitNs).toFixed(0)} ns (OtelLogger / emit alone: ${(median(oursNs) / median(emitNs)).toFixed(2)}x;`);
  console.log('    runtel keeps the gauge value in a map read at collection instead of a gauge.record per point)');
  console.log(`  undelivered: ${processor.undeliveredCount()}, exported: ${logExporter.exported}`);
  return ratio;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function memory(): Promise<void> {
  const port = await closedPort();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  const handle = startOtel({ metricExportIntervalMillis: 60_000 });
  const undeliveredLines: string[] = [];
  const logger = new OtelLogger({
    delivery: handle,
    ownedSdk: handle,
    exclusiveProcessor: handle.logRecordProcessor, // as createLoggerFromEnv sets it up
    flushTimeoutMillis: 2000,
    onUndelivered: (n) => undeliveredLines.push(`reported at finish/shutdown: ${n} undelivered`),
    onError: () => undefined, // flush deadlines are expected with no endpoint
  });

  gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const total = 1_000_000;
  const start = Date.now();
  const run = logger.startRun({ name: 'offline', experiment: 'bench' });
  for (let step = 0; step < total; step++) {
    run.logMetrics({ loss: 1 / (step + 1) }, { step });
    if (step % 1000 === 999) {
      await yieldToEventLoop(); // a training step: the event loop runs between batches
      if (step % 10_000 === 9_999) peak = Math.max(peak, process.memoryUsage().rss);
    }
  }
  const loopMillis = Date.now() - start;
  peak = Math.max(peak, process.memoryUsage().rss);
  await run.finish();
  await logger.shutdown();
  await handle.shutdown(); // the same promise the logger started; waits out the in-flight exports
  gc?.();
  const after = process.memoryUsage().rss;
  const stats = handle.deliveryStats();

  console.log(`memory: ${total.toLocaleString('en')} points, OTLP endpoint unreachable (127.0.0.1:${port}, closed)`);
  console.log(`  logging loop: ${loopMillis} ms`);
  console.log(`  RSS baseline ${(baseline / 2 ** 20).toFixed(1)} MB, peak ${(peak / 2 ** 20).toFixed(1)} MB, after shutdown ${(after / 2 ** 20).toFixed(1)} MB`);
  const growth = (peak - baseline) / 2 ** 20;
  console.log(`  RSS growth: ${growth.toFixed(1)} MB (target <= 100 MB)  ${growth <= 100 ? 'OK' : 'MISSED'}`);
  console.log(`  undelivered records: ${(logger.undeliveredCount() ?? 'unknown').toLocaleString('en')} (${total.toLocaleString('en')} points + ml.run.start + ml.run.end)`);
  console.log(`    queue full: ${stats.dropped}, export failed: ${stats.failed}, abandoned at shutdown: ${stats.abandoned}, exported: ${stats.exported}, pending: ${stats.pending}`);
  console.log(`    last error: ${stats.lastError ?? '-'}`);
  for (const line of undeliveredLines) console.log(`  ${line}`);
}

// Memory first, from a fresh heap; then the hot path.
await memory();
const ratio = await hotPath();
process.exitCode = ratio <= 1.2 ? 0 : 1;
