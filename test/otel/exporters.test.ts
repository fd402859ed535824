// The run-event exporters an app's own SDK uses (MLflow's and W&B's are these over their backends):
// once-only shutdown per exporter, as OpenTelemetry's exporters have it, and sharing that is
// explicit rather than a hidden registry keyed by URL.
import { describe, expect, it } from 'vitest';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { RunBackend, RunEvent } from '../../src/index.js';
import { MlflowLogRecordExporter, createMlflowExporters } from '../../src/index.js';
import { pipelines } from './helpers.js';
import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter } from '../../src/otel/translate/RunEventExporters.js';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';

class CountingBackend implements RunBackend {
  readonly name = 'counting';
  readonly events: RunEvent[] = [];
  shutdowns = 0;
  onEvent(event: RunEvent): void {
    if (this.shutdowns > 0) throw new Error(`event ${event.type} after shutdown`);
    this.events.push(event);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    this.shutdowns++;
    return Promise.resolve();
  }
}

/** Log records of one small run, as the SDK hands them to an exporter. */
async function runRecords(): Promise<ReadableLogRecord[]> {
  const otel = pipelines();
  const run = otel.logger.startRun({ name: 'r' });
  run.logMetrics({ loss: 1 }, { step: 0 });
  await run.finish();
  await otel.logger.shutdown();
  const records = otel.records();
  await otel.shutdown();
  return records;
}

function exportLogs(exporter: RunEventLogRecordExporter, logs: ReadableLogRecord[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(logs, resolve));
}

describe('run-event exporters', () => {
  it('shut down once each: a second shutdown of the span exporter leaves the shared backend to the live log exporter', async () => {
    const backend = new CountingBackend();
    const sink = new OtelRunSink(backend);
    const spans = new RunEventSpanExporter(sink);
    const logs = new RunEventLogRecordExporter(sink);
    const first = spans.shutdown();
    expect(spans.shutdown()).toBe(first);
    await first;
    await spans.shutdown();
    expect(backend.shutdowns).toBe(0);
    // The log exporter still delivers.
    const result = await exportLogs(logs, await runRecords());
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    expect(backend.events.map((e) => e.type)).toEqual(['run_started', 'metrics', 'run_finished']);
    await logs.shutdown();
    await logs.shutdown();
    expect(backend.shutdowns).toBe(1);
    // A shut-down exporter refuses data instead of handing it to a closed backend.
    expect((await exportLogs(logs, await runRecords())).code).toBe(ExportResultCode.FAILED);
  });

  it('share a sender only when made together: exporters made apart keep their own options', async () => {
    const trackingUri = 'http://127.0.0.1:9';
    const pair = createMlflowExporters({ trackingUri, flushIntervalMillis: 100 });
    expect(pair.spanExporter.sink).toBe(pair.logRecordExporter.sink);
    const alone = new MlflowLogRecordExporter({ trackingUri, flushIntervalMillis: 900 });
    expect(alone.sink).not.toBe(pair.logRecordExporter.sink);
    expect(alone.sink.backend).not.toBe(pair.logRecordExporter.sink.backend);
    await Promise.all([pair.spanExporter.shutdown(), pair.logRecordExporter.shutdown(), alone.shutdown()]);
  });
});
