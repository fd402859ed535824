// OTel SDK exporters to MLflow, for apps that already run a NodeSDK: add
// `new MlflowSpanExporter()` to its span processors and `new MlflowLogRecordExporter()` to its log
// record processors. Both share one MLflow sender per tracking URI, and find runs by their
// `runtel.run_id` tag before creating them, so an exporter restart never duplicates a run.

import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter } from '../otel/translate/RunEventExporters.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { getStringFromEnv } from '../core/env.js';
import { MlflowBackend } from './MlflowBackend.js';
import type { MlflowBackendOptions } from './MlflowBackend.js';

export interface MlflowExporterOptions extends MlflowBackendOptions {
  onError?: BackendErrorHandler;
}

const sinks = new Map<string, OtelRunSink>();

// The first exporter's options configure the sender shared with later exporters of the same URI.
function sinkFor(options: MlflowExporterOptions): OtelRunSink {
  const key = (options.trackingUri ?? getStringFromEnv('MLFLOW_TRACKING_URI') ?? '').replace(/\/+$/, '');
  let sink = sinks.get(key);
  if (sink === undefined || sink.isShutDown) {
    sink = new OtelRunSink(new MlflowBackend({ ...options, findExistingRuns: true }), options.onError);
    sinks.set(key, sink);
  }
  return sink;
}

export class MlflowSpanExporter extends RunEventSpanExporter {
  constructor(options: MlflowExporterOptions = {}) {
    super(sinkFor(options));
  }
}

export class MlflowLogRecordExporter extends RunEventLogRecordExporter {
  constructor(options: MlflowExporterOptions = {}) {
    super(sinkFor(options));
  }
}
