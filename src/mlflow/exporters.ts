// OTel SDK exporters to MLflow, for apps that already run a NodeSDK: add
// `new MlflowSpanExporter()` to its span processors and `new MlflowLogRecordExporter()` to its log
// record processors. Both share one MLflow sender per tracking URI, and find runs by their
// `runtel.run_id` tag before creating them, so an exporter restart never duplicates a run.

import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter, sharedSink } from '../otel/translate/RunEventExporters.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { getStringFromEnv } from '../core/env.js';
import { MlflowBackend } from './MlflowBackend.js';
import type { MlflowBackendOptions } from './MlflowBackend.js';

export interface MlflowExporterOptions extends MlflowBackendOptions {
  onError?: BackendErrorHandler;
}

function sinkFor(options: MlflowExporterOptions): OtelRunSink {
  const uri = (options.trackingUri ?? getStringFromEnv('MLFLOW_TRACKING_URI') ?? '').replace(/\/+$/, '');
  return sharedSink(`mlflow\0${uri}`, () => new OtelRunSink(new MlflowBackend({ ...options, findExistingRuns: true }), options.onError));
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
