import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordExporter, ReadableLogRecord, SdkLogRecord } from '@opentelemetry/sdk-logs';
import { CountingBatchLogRecordProcessor, processDeliveryStats } from '../../src/otel/CountingBatchLogRecordProcessor.js';
import type { Pipelines } from './helpers.js';
import { pipelines, sleep } from './helpers.js';

let otel: Pipelines | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await otel?.shutdown();
  otel = undefined;
});

/** An exporter whose every export fails, as the OTLP exporters report an unreachable endpoint after their retries. */
class FailingExporter implements LogRecordExporter {
  exports = 0;
  constructor(private readonly mode: 'fail' | 'throw' | 'hang' | 'async-fail' = 'fail') {}
  export(_logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    this.exports++;
    if (this.mode === 'throw') throw new Error('serializer exploded');
    if (this.mode === 'hang') return;
    const result = { code: ExportResultCode.FAILED, error: new Error('connect ECONNREFUSED 127.0.0.1:9') };
    if (this.mode === 'async-fail') setTimeout(() => resultCallback(result), 5);
    else resultCallback(result);
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function emitter(processor: CountingBatchLogRecordProcessor | BatchLogRecordProcessor) {
  const provider = new LoggerProvider({ processors: [processor] });
  const logger = provider.getLogger('t');
  return { provider, emit: (n: number) => { for (let i = 0; i < n; i++) logger.emit({ eventName: 'ml.metric', attributes: { i } }); } };
}

describe('CountingBatchLogRecordProcessor', () => {
  it('delivers 10,000 points logged in a tight loop where the SDK default (queue 2048) drops most', async () => {
    // The SDK's BatchLogRecordProcessor with its defaults.
    const sdk = pipelines({ processor: (exporter) => new BatchLogRecordProcessor({ exporter }), logger: { delivery: { deliveryStats: processDeliveryStats } } });
    const sdkRun = sdk.logger.startRun({ name: 'sdk-default' });
    for (let step = 0; step < 10_000; step++) sdkRun.logMetrics({ loss: 1 / (step + 1) }, { step });
    await sdkRun.finish();
    const sdkDelivered = sdk.records('ml.metric').length;
    await sdk.shutdown();
    // It holds 2048 queued plus the one batch (512) in flight; the rest is gone, uncounted.
    expect(sdkDelivered).toBeLessThanOrEqual(2048 + 512);

    // runtel's processor with its defaults.
    otel = pipelines();
    const run = otel.logger.startRun({ name: 'counting' });
    for (let step = 0; step < 10_000; step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
    await run.finish();
    const points = otel.records('ml.metric');
    expect(points).toHaveLength(10_000);
    expect(new Set(points.map((p) => p.attributes['ml.metric.step'])).size).toBe(10_000);
    expect(otel.logger.undeliveredCount()).toBe(0);
    expect(otel.logger.deliveryStats()).toMatchObject({ accepted: 10_002, exported: 10_002, dropped: 0, failed: 0, abandoned: 0, pending: 0, undelivered: 0 });
  });

  it('exports as soon as a batch is full, without waiting for the scheduled delay', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const processor = new CountingBatchLogRecordProcessor({ exporter, maxExportBatchSize: 100, scheduledDelayMillis: 60_000 });
    const { emit, provider } = emitter(processor);
    emit(250);
    await sleep(5);
    expect(exporter.getFinishedLogRecords()).toHaveLength(200);
    await processor.forceFlush();
    expect(exporter.getFinishedLogRecords()).toHaveLength(250);
    await provider.shutdown();
  });

  it('exports a partial batch after the scheduled delay', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const processor = new CountingBatchLogRecordProcessor({ exporter, scheduledDelayMillis: 20 });
    const { emit, provider } = emitter(processor);
    emit(3);
    expect(exporter.getFinishedLogRecords()).toHaveLength(0);
    await sleep(250);
    expect(exporter.getFinishedLogRecords()).toHaveLength(3);
    await provider.shutdown();
  });

  it('counts failed exports and reports them at finish without throwing into training', async () => {
    const exporter = new FailingExporter('async-fail');
    const reports: Array<[number, number]> = [];
    otel = pipelines({ processor: () => new CountingBatchLogRecordProcessor({ exporter }), logger: { onUndelivered: (n, stats) => reports.push([n, stats.failed]) } });
    // Export failures happen in the background: none may surface in training code, now or later.
    const escaped: unknown[] = [];
    const onEscape = (error: unknown): void => void escaped.push(error);
    process.on('unhandledRejection', onEscape);
    process.on('uncaughtException', onEscape);
    const run = otel.logger.startRun({ name: 'offline' });
    try {
      for (let step = 0; step < 1000; step++) run.logMetrics({ loss: step }, { step });
      await expect(run.finish()).resolves.toBeUndefined();
      await sleep(50);
    } finally {
      process.off('unhandledRejection', onEscape);
      process.off('uncaughtException', onEscape);
    }
    expect(escaped).toEqual([]);
    expect(otel.logger.undeliveredCount()).toBe(1002);
    expect(otel.logger.deliveryStats()).toMatchObject({ failed: 1002, exported: 0, pending: 0, lastError: 'connect ECONNREFUSED 127.0.0.1:9' });
    expect(reports).toEqual([[1002, 1002]]);
    expect(exporter.exports).toBeGreaterThan(1);
  });

  it('prints one warning line per finish when records went undelivered (default reporting)', async () => {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    otel = pipelines({ processor: () => new CountingBatchLogRecordProcessor({ exporter: new FailingExporter('fail') }) });
    const first = otel.logger.startRun({ name: 'a' });
    first.logMetrics({ loss: 1 });
    await first.finish();
    const second = otel.logger.startRun({ name: 'b' });
    await second.finish();
    const warnings = lines.filter((l) => l.includes('could not be delivered'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('runtel: otel: 3 log record(s)');
    expect(warnings[0]).toContain('export failed: 3');
    expect(warnings[1]).toContain('5 log record(s)');
  });

  it('counts an exporter that throws, and one that never calls back (timeout)', async () => {
    // A queue of 5: the 6th record hands the full batch to the exporter inside emit(), where a throw would escape.
    const throwing = new CountingBatchLogRecordProcessor({ exporter: new FailingExporter('throw'), maxQueueSize: 5, maxExportBatchSize: 5 });
    const a = emitter(throwing);
    expect(() => a.emit(10)).not.toThrow();
    await throwing.forceFlush();
    expect(throwing.deliveryStats()).toMatchObject({ failed: 10, undelivered: 10, lastError: 'serializer exploded' });
    await a.provider.shutdown();

    const hanging = new CountingBatchLogRecordProcessor({ exporter: new FailingExporter('hang'), exportTimeoutMillis: 30 });
    const b = emitter(hanging);
    b.emit(10);
    await hanging.forceFlush();
    expect(hanging.deliveryStats()).toMatchObject({ failed: 10, pending: 0, lastError: 'log export did not complete within 30 ms' });
    await b.provider.shutdown();
  });

  it('bounds its queue: past it, records are counted as dropped; shutdown gives up on a failing exporter and counts the rest', async () => {
    const processor = new CountingBatchLogRecordProcessor({ exporter: new FailingExporter('hang'), maxQueueSize: 100, exportTimeoutMillis: 50 });
    const { emit, provider } = emitter(processor);
    emit(1000);
    // 100 queued; two full batches were handed to the (hanging) exporter inline when the queue filled.
    expect(processor.deliveryStats()).toMatchObject({ accepted: 300, dropped: 700, pending: 300 });
    await provider.shutdown();
    const stats = processor.deliveryStats();
    expect(stats).toMatchObject({ accepted: 300, dropped: 700, failed: 200, abandoned: 100, pending: 0, undelivered: 1000 });
    for (let i = 0; i < 5; i++) processor.onEmit({} as SdkLogRecord); // after shutdown (the provider itself would no longer emit)
    expect(processor.deliveryStats()).toMatchObject({ abandoned: 105, undelivered: 1005 });
    await expect(processor.shutdown()).resolves.toBeUndefined(); // idempotent
  });

  it('with exclusiveProcessor, skips building records the full processor would refuse, and counts them', async () => {
    const processor = new CountingBatchLogRecordProcessor({ exporter: new FailingExporter('hang'), maxQueueSize: 100, exportTimeoutMillis: 50 });
    otel = pipelines({ processor: () => processor, logger: { exclusiveProcessor: processor, onUndelivered: () => undefined } });
    const onEmit = vi.spyOn(processor, 'onEmit');
    const run = otel.logger.startRun({ name: 'backpressure' });
    for (let step = 0; step < 1000; step++) run.logMetrics({ loss: step }, { step });
    // ml.run.start + 299 points fill the queue and the two export slots; the other 701 points are never built.
    expect(onEmit).toHaveBeenCalledTimes(300);
    expect(processor.deliveryStats()).toMatchObject({ accepted: 300, dropped: 701 });
    expect(processor.hasRoom()).toBe(false);
    await run.finish();
    await otel.shutdown();
    otel = undefined;
    expect(processor.deliveryStats()).toMatchObject({ undelivered: 1002, exported: 0, pending: 0 });
  });

  it('makes room inline when a tight loop fills the queue and the exporter keeps up', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const processor = new CountingBatchLogRecordProcessor({ exporter, maxQueueSize: 1000, maxExportBatchSize: 100 });
    const { emit, provider } = emitter(processor);
    emit(50_000);
    expect(processor.deliveryStats().dropped).toBe(0);
    await processor.forceFlush();
    expect(exporter.getFinishedLogRecords()).toHaveLength(50_000);
    await provider.shutdown();
  });

  it('forceFlush resolves only once every earlier record is settled, also when exports finish out of order', async () => {
    const callbacks: Array<() => void> = [];
    let exported = 0;
    const exporter: LogRecordExporter = {
      export: (logs, cb) => callbacks.push(() => {
        exported += logs.length;
        cb({ code: ExportResultCode.SUCCESS });
      }),
      shutdown: () => Promise.resolve(),
      forceFlush: () => Promise.resolve(),
    };
    const processor = new CountingBatchLogRecordProcessor({ exporter, maxExportBatchSize: 10, maxConcurrentExports: 2 });
    const { emit, provider } = emitter(processor);
    emit(25);
    let flushed = false;
    const flush = processor.forceFlush().then(() => (flushed = true));
    await sleep(1);
    expect(callbacks).toHaveLength(2);
    callbacks[1]!(); // the second batch completes first
    await sleep(1);
    expect(flushed).toBe(false);
    callbacks[0]!();
    await sleep(1);
    expect(callbacks).toHaveLength(3); // the partial batch went out as a slot freed
    expect(flushed).toBe(false);
    callbacks[2]!();
    await flush;
    expect(exported).toBe(25);
    expect(processor.deliveryStats()).toMatchObject({ exported: 25, pending: 0 });
    const done = provider.shutdown();
    await done;
  });

  it('validates its options', () => {
    const exporter = new InMemoryLogRecordExporter();
    expect(() => new CountingBatchLogRecordProcessor({ exporter, maxQueueSize: 0 })).toThrow(RangeError);
    expect(() => new CountingBatchLogRecordProcessor({} as never)).toThrow(TypeError);
  });
});
