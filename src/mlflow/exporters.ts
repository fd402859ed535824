// OTel SDK exporters to MLflow, for apps that already run a NodeSDK. `createMlflowExporters()` makes
// a span exporter (for the span processors) and a log record exporter (for the log record
// processors) that share one translator and one MLflow sender, so a run's span and its records meet.
// They find runs by their `runtel.run_id` tag before creating them, so an exporter restart never
// duplicates a run. An exporter constructed alone has a sender of its own (a traces-only pipeline).

import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter } from '../otel/translate/RunEventExporters.js';
import type { RunEventExporterPair } from '../otel/translate/RunEventExporters.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { MlflowBackend } from './MlflowBackend.js';
import type { MlflowBackendOptions } from './MlflowBackend.js';

export interface MlflowExporterOptions extends MlflowBackendOptions {
  onError?: BackendErrorHandler;
}

function sinkFor(options: MlflowExporterOptions | OtelRunSink): OtelRunSink {
  return options instanceof OtelRunSink ? options : new OtelRunSink(new MlflowBackend({ ...options, findExistingRuns: true }), options.onError);
}

export class MlflowSpanExporter extends RunEventSpanExporter {
  constructor(options: MlflowExporterOptions | OtelRunSink = {}) {
    super(sinkFor(options));
  }
}

export class MlflowLogRecordExporter extends RunEventLogRecordExporter {
  constructor(options: MlflowExporterOptions | OtelRunSink = {}) {
    super(sinkFor(options));
  }
}

/** The MLflow span and log record exporters, sharing one sender. */
export function createMlflowExporters(options: MlflowExporterOptions = {}): RunEventExporterPair<MlflowSpanExporter, MlflowLogRecordExporter> {
  const sink = sinkFor(options);
  return { spanExporter: new MlflowSpanExporter(sink), logRecordExporter: new MlflowLogRecordExporter(sink) };
}
