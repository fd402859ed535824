// OTel SDK exporters to W&B, for apps that already run a NodeSDK. `createWandbExporters()` makes a
// span exporter and a log record exporter that share one translator and one W&B sender, so a run's
// span and its records meet. They ask W&B for each run before streaming it, so an exporter restart
// continues a run's history instead of overwriting it or writing a row twice.

import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter } from '../otel/translate/RunEventExporters.js';
import type { RunEventExporterPair } from '../otel/translate/RunEventExporters.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { WandbBackend } from './WandbBackend.js';
import type { WandbBackendOptions } from './WandbBackend.js';

export interface WandbExporterOptions extends WandbBackendOptions {
  onError?: BackendErrorHandler;
}

function sinkFor(options: WandbExporterOptions | OtelRunSink): OtelRunSink {
  return options instanceof OtelRunSink ? options : new OtelRunSink(new WandbBackend({ ...options, findExistingRuns: true }), options.onError);
}

export class WandbSpanExporter extends RunEventSpanExporter {
  constructor(options: WandbExporterOptions | OtelRunSink = {}) {
    super(sinkFor(options));
  }
}

export class WandbLogRecordExporter extends RunEventLogRecordExporter {
  constructor(options: WandbExporterOptions | OtelRunSink = {}) {
    super(sinkFor(options));
  }
}

/** The W&B span and log record exporters, sharing one sender. */
export function createWandbExporters(options: WandbExporterOptions = {}): RunEventExporterPair<WandbSpanExporter, WandbLogRecordExporter> {
  const sink = sinkFor(options);
  return { spanExporter: new WandbSpanExporter(sink), logRecordExporter: new WandbLogRecordExporter(sink) };
}
