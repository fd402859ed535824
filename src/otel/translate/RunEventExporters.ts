// OTel SDK exporters that turn runtel's spans and log records into run events for a RunBackend
// (MLflow, W&B). The span and log exporters of one backend share one translator and one backend,
// so a run's records and its span meet.

import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { RunBackend } from '../../core/RunBackend.js';
import { FailureReporter } from '../../core/errors.js';
import type { BackendErrorHandler } from '../../core/errors.js';
import { OtelRunTranslator } from './OtelRunTranslator.js';
import { fromReadableLogRecord, fromReadableSpan } from './inputs.js';

/** A backend fed by a translator; shared by a span exporter and a log record exporter. */
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

  /** Enqueues the events; delivery (with retries) goes on in the backend's sender. */
  deliver(events: ReturnType<OtelRunTranslator['logs']>): void {
    for (const event of events) {
      try {
        this.backend.onEvent(event);
      } catch (error) {
        this.failures.report({ backend: this.backend.name, operation: 'onEvent', error });
      }
    }
  }

  get isShutDown(): boolean {
    return this._shutdown !== undefined;
  }

  acquire(): void {
    this._users++;
  }

  /** Shuts the backend down when the last exporter using it shuts down. */
  release(): Promise<void> {
    this._users--;
    if (this._users > 0) return this.backend.forceFlush();
    this._shutdown ??= this.backend.shutdown();
    return this._shutdown;
  }
}

const sinks = new Map<string, OtelRunSink>();

/**
 * The sink shared by every exporter of one target (`key`), so a run's spans and records meet in one
 * sender. The first exporter's options configure it; a sink that was shut down is replaced.
 */
export function sharedSink(key: string, create: () => OtelRunSink): OtelRunSink {
  let sink = sinks.get(key);
  if (sink === undefined || sink.isShutDown) {
    sink = create();
    sinks.set(key, sink);
  }
  return sink;
}

/**
 * Reports SUCCESS once the data is queued in the backend: its sender retries and counts failures
 * on its own, and waiting for the remote server here would hold the SDK's batch processor.
 */
export class RunEventSpanExporter implements SpanExporter {
  readonly sink: OtelRunSink;

  constructor(sink: OtelRunSink) {
    this.sink = sink;
    sink.acquire();
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.sink.deliver(this.sink.translator.spans(spans.map(fromReadableSpan)));
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  forceFlush(): Promise<void> {
    return this.sink.backend.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.sink.release();
  }
}

export class RunEventLogRecordExporter implements LogRecordExporter {
  readonly sink: OtelRunSink;

  constructor(sink: OtelRunSink) {
    this.sink = sink;
    sink.acquire();
  }

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    this.sink.deliver(this.sink.translator.logs(logs.map(fromReadableLogRecord)));
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  forceFlush(): Promise<void> {
    return this.sink.backend.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.sink.release();
  }
}
