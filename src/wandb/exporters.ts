// OTel SDK exporters to W&B, for apps that already run a NodeSDK: add `new WandbSpanExporter()` to
// its span processors and `new WandbLogRecordExporter()` to its log record processors. Both share
// one W&B sender per base URL, entity and project, and ask W&B for each run before streaming it, so
// an exporter restart continues a run's history instead of overwriting it.

import { OtelRunSink, RunEventLogRecordExporter, RunEventSpanExporter, sharedSink } from '../otel/translate/RunEventExporters.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { getStringFromEnv } from '../core/env.js';
import { DEFAULT_WANDB_BASE_URL } from './WandbClient.js';
import { WandbBackend } from './WandbBackend.js';
import type { WandbBackendOptions } from './WandbBackend.js';

export interface WandbExporterOptions extends WandbBackendOptions {
  onError?: BackendErrorHandler;
}

function sinkFor(options: WandbExporterOptions): OtelRunSink {
  const base = (options.baseUrl ?? getStringFromEnv('WANDB_BASE_URL') ?? DEFAULT_WANDB_BASE_URL).replace(/\/+$/, '');
  const key = ['wandb', base, options.entity ?? getStringFromEnv('WANDB_ENTITY') ?? '', options.project ?? getStringFromEnv('WANDB_PROJECT') ?? ''].join('\0');
  return sharedSink(key, () => new OtelRunSink(new WandbBackend({ ...options, findExistingRuns: true }), options.onError));
}

export class WandbSpanExporter extends RunEventSpanExporter {
  constructor(options: WandbExporterOptions = {}) {
    super(sinkFor(options));
  }
}

export class WandbLogRecordExporter extends RunEventLogRecordExporter {
  constructor(options: WandbExporterOptions = {}) {
    super(sinkFor(options));
  }
}
