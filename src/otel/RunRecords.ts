// The OTel backend's log records other than metric points: a run's start, params and tags split over
// as many records as the logger provider's attribute count limit needs, its artifacts and its end.
// Each record is emitted in the run span's context (see docs/semantic-conventions.md).

import type { Context } from '@opentelemetry/api';
import type { LogAttributes, Logger as OtelApiLogger } from '@opentelemetry/api-logs';
import type { ErrorInfo } from '../core/events.js';
import type { FinalRunStatus } from '../core/types.js';
import {
  ATTR_EVENT_NAME,
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_STACKTRACE,
  ATTR_EXCEPTION_TYPE,
  ATTR_RUN_ID,
  ATTR_RUN_METRIC_RECORDS_COUNT,
  ATTR_RUN_STATUS,
  EVENT_PARAMS,
  EVENT_RUN_END,
  EVENT_RUN_START,
  EVENT_TAGS,
  PARAM_PREFIX,
  TAG_PREFIX,
} from './conventions.js';

export class RunRecords {
  readonly logger: OtelApiLogger;
  readonly eventNameAttribute: boolean;
  private readonly _limit: number;

  constructor(logger: OtelApiLogger, logRecordAttributeCountLimit: number, eventNameAttribute: boolean) {
    this.logger = logger;
    this._limit = logRecordAttributeCountLimit;
    this.eventNameAttribute = eventNameAttribute;
  }

  emit(ctx: Context, eventName: string, time: number, attributes: LogAttributes): void {
    if (this.eventNameAttribute) attributes[ATTR_EVENT_NAME] = eventName;
    this.logger.emit({ eventName, timestamp: time, context: ctx, attributes });
  }

  /** ml.run.start: identity, then params and tags while they fit; the rest in ml.params / ml.tags records. */
  start(ctx: Context, runId: string, identity: LogAttributes, params: Record<string, string>, tags: Record<string, string>, time: number): void {
    const attributes: LogAttributes = { ...identity };
    let room = this._limit - Object.keys(attributes).length - (this.eventNameAttribute ? 1 : 0);
    const p = Object.entries(params);
    const t = Object.entries(tags);
    let i = 0;
    let j = 0;
    for (; i < p.length && room > 0; i++, room--) attributes[PARAM_PREFIX + p[i]![0]] = p[i]![1];
    for (; j < t.length && room > 0; j++, room--) attributes[TAG_PREFIX + t[j]![0]] = t[j]![1];
    this.emit(ctx, EVENT_RUN_START, time, attributes);
    this.chunked(ctx, runId, EVENT_PARAMS, PARAM_PREFIX, p.slice(i), time);
    this.chunked(ctx, runId, EVENT_TAGS, TAG_PREFIX, t.slice(j), time);
  }

  params(ctx: Context, runId: string, params: Record<string, string>, time: number): void {
    this.chunked(ctx, runId, EVENT_PARAMS, PARAM_PREFIX, Object.entries(params), time);
  }

  tags(ctx: Context, runId: string, tags: Record<string, string>, time: number): void {
    this.chunked(ctx, runId, EVENT_TAGS, TAG_PREFIX, Object.entries(tags), time);
  }

  /** ml.run.end, with the exception of a failed run, and the count of metric records when this process emitted them. */
  end(ctx: Context, runId: string, status: FinalRunStatus, error: ErrorInfo | undefined, time: number, metricRecords?: number): void {
    const record: LogAttributes = { [ATTR_RUN_ID]: runId, [ATTR_RUN_STATUS]: status };
    if (metricRecords !== undefined) record[ATTR_RUN_METRIC_RECORDS_COUNT] = metricRecords;
    if (error !== undefined) {
      record[ATTR_EXCEPTION_TYPE] = error.type;
      record[ATTR_EXCEPTION_MESSAGE] = error.message;
      if (error.stack !== undefined) record[ATTR_EXCEPTION_STACKTRACE] = error.stack;
    }
    this.emit(ctx, EVENT_RUN_END, time, record);
  }

  /** Params or tags as `prefix<key>` attributes over as many records as the attribute limit needs. */
  private chunked(ctx: Context, runId: string, eventName: string, prefix: string, entries: Array<[string, string]>, time: number): void {
    const perRecord = Math.max(1, this._limit - 1 - (this.eventNameAttribute ? 1 : 0));
    for (let i = 0; i < entries.length; i += perRecord) {
      const attributes: LogAttributes = { [ATTR_RUN_ID]: runId };
      for (const [key, value] of entries.slice(i, i + perRecord)) attributes[prefix + key] = value;
      this.emit(ctx, eventName, time, attributes);
    }
  }
}
