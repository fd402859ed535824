// OTel SDK exporters that turn runtel's spans and log records into run events for a RunBackend
// (MLflow, W&B). A run's records and its span must meet in one translator and one backend, so the
// two exporters of a target are made together (`runEventExporters`) and share them explicitly.
//
// Each exporter shuts down once (a second call returns the first call's promise), as OpenTelemetry
// exporters do; the backend shuts down when both have.

import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { RunBackend } from '../../core/RunBackend.js';
import type { RunEvent } from '../../core/events.js';
import { FailureReporter } from '../../core/errors.js';
import type { BackendErrorHandler } from '../../core/errors.js';
import { OtelRunTranslator } from './OtelRunTranslator.js';
import { fromReadableLogRecord, fromReadableSpan } from './inputs.js';

/** A backend fed by a translator; shared by a target's span exporter and log record exporter. */
export class OtelRunSink {
  readonly backend: RunBackend;
  readonly translator = new OtelRunTranslator();
  readonly failures: FailureReporter;
  private _users = 0;
  private _shutdown: Promise<void> | undefined;

  constructor(backend: RunBackend, onError?: BackendErrorHandler) {
    this.backend = backend;
    this.failures = new FailureReporter(onError);
    backend.bindFailureReporter?.((failure) => this.failures.report(failure));
  }

  /** Enqueues the events; delivery (with retries) goes on in the backend. */
  deliver(events: readonly RunEvent[]): void {
    for (const event of events) {
      try {
        this.backend.onEvent(event);
      } catch (error) {
        this.failures.report({ backend: this.backend.name, operation: 'onEvent', error });
      }
    }
  }

  /** One more exporter uses this sink. */
  acquire(): void {
    this._users++;
  }

  /** An exporter is done with the sink (once per exporter): the last one shuts the backend down. */
  release(): Promise<void> {
    this._users--;
    if (this._users > 0) return this.backend.forceFlush();
    this._shutdown ??= this.backend.shutdown();
    return this._shutdown;
  }
}

/**
 * Reports SUCCESS once the data is queued in the backend: its sender retries and counts failures
 * on its own, and waiting for the remote server here would hold the SDK's batch processor.
 */
export class RunEventSpanExporter implements SpanExporter {
  readonly sink: OtelRunSink;
  private _shutdown: Promise<void> | undefined;

  constructor(sink: OtelRunSink) {
    this.sink = sink;
    sink.acquire();
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this._shutdown !== undefined) return resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
    this.sink.deliver(this.sink.translator.spans(spans.map(fromReadableSpan)));
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  forceFlush(): Promise<void> {
    return this.sink.backend.forceFlush();
  }

  shutdown(): Promise<void> {
    this._shutdown ??= this.sink.release();
    return this._shutdown;
  }
}

export class RunEventLogRecordExporter implements LogRecordExporter {
  readonly sink: OtelRunSink;
  private _shutdown: Promise<void> | undefined;

  constructor(sink: OtelRunSink) {
    this.sink = sink;
    sink.acquire();
  }

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    if (this._shutdown !== undefined) return resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
    this.sink.deliver(this.sink.translator.logs(logs.map(fromReadableLogRecord)));
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  forceFlush(): Promise<void> {
    return this.sink.backend.forceFlush();
  }

  shutdown(): Promise<void> {
    this._shutdown ??= this.sink.release();
    return this._shutdown;
  }
}

/** A span exporter and a log record exporter that share one translator and one backend. */
export interface RunEventExporterPair<S extends SpanExporter = RunEventSpanExporter, L extends LogRecordExporter = RunEventLogRecordExporter> {
  spanExporter: S;
  logRecordExporter: L;
}

/** The exporter pair for any RunBackend. */
export function runEventExporters(backend: RunBackend, onError?: BackendErrorHandler): RunEventExporterPair {
  const sink = new OtelRunSink(backend, onError);
  return { spanExporter: new RunEventSpanExporter(sink), logRecordExporter: new RunEventLogRecordExporter(sink) };
}
