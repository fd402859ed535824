// OtelLogger: a Logger whose runs become OpenTelemetry spans, log records and instruments.

import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { OtelBackend } from './OtelBackend.js';
import type { OtelBackendOptions } from './OtelBackend.js';
import type { DeliveryStats } from './CountingBatchLogRecordProcessor.js';

export interface OtelLoggerOptions extends BackendLoggerOptions, OtelBackendOptions {}

/**
 * Logs runs to OpenTelemetry: by default through the global tracer, meter and logger providers, so
 * an app that starts its own NodeSDK just adds it (use `startOtel()` when it has none). The mapping
 * is the contract in docs/semantic-conventions.md.
 */
export class OtelLogger extends BackendLogger {
  declare readonly backend: OtelBackend;

  constructor(options: OtelLoggerOptions = {}) {
    super(new OtelBackend(options), options);
  }

  /**
   * Log records (metric points and run records) that could not be delivered since this logger was
   * created; undefined when runtel cannot know (no CountingBatchLogRecordProcessor exists).
   */
  undeliveredCount(): number | undefined {
    return this.backend.undeliveredCount();
  }

  /** Delivery counts of the log record processor(s) this logger reports on. */
  deliveryStats(): DeliveryStats {
    return this.backend.deliveryStats();
  }

  /** Metric points not mirrored on the `ml.metric` gauge because of its cardinality bound, by reason. */
  gaugeOverflow(): { runs: number; keys: number } {
    return this.backend.gaugeOverflow();
  }
}
