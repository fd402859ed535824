// What of a run goes on its span within the tracer provider's attribute count limit: identity and
// status first, then params and tags (three quarters of the room left), then the final metric
// summaries; what does not fit is counted on the span (every param, tag and point is also in the
// log records).

import type { Attributes, Span } from '@opentelemetry/api';
import { ATTR_RUN_DROPPED_METRICS, ATTR_RUN_DROPPED_PARAMS, ATTR_RUN_DROPPED_TAGS, METRIC_PREFIX, PARAM_PREFIX, TAG_PREFIX, toMetricAttributeValue } from './conventions.js';
import type { Latest } from './RunGauges.js';

const RESERVED_SPAN_ATTRIBUTES = 9; // identity (5), status, three dropped counts

export class SpanAttributeBudget {
  private readonly _limit: number;
  private _used = 0;
  private readonly _tagKeys = new Set<string>();
  private _droppedParams = 0;
  private readonly _droppedTagKeys = new Set<string>();

  constructor(spanAttributeCountLimit: number) {
    this._limit = spanAttributeCountLimit;
  }

  /** Params and tags share three quarters of the span's free attribute room; metric summaries get the rest. */
  private get _paramTagRoom(): number {
    return Math.floor((Math.max(0, this._limit - RESERVED_SPAN_ATTRIBUTES) * 3) / 4);
  }

  params(span: Span, params: Record<string, string>): void {
    const cap = this._paramTagRoom;
    const kept: Attributes = {};
    for (const key in params) {
      if (this._used < cap) {
        kept[PARAM_PREFIX + key] = params[key]!;
        this._used++;
      } else {
        this._droppedParams++;
      }
    }
    span.setAttributes(kept);
  }

  /** Tags are last-write-wins: a tag already on the span is updated in place. */
  tags(span: Span, tags: Record<string, string>): void {
    const cap = this._paramTagRoom;
    const kept: Attributes = {};
    for (const key in tags) {
      if (this._tagKeys.has(key)) {
        kept[TAG_PREFIX + key] = tags[key]!;
      } else if (this._used < cap && !this._droppedTagKeys.has(key)) {
        kept[TAG_PREFIX + key] = tags[key]!;
        this._tagKeys.add(key);
        this._used++;
      } else {
        this._droppedTagKeys.add(key);
      }
    }
    span.setAttributes(kept);
  }

  /** The end of the run: its latest metric values in the room left, and the dropped counts. */
  finalAttributes(latest: ReadonlyMap<string, Latest>): Attributes {
    const attributes: Attributes = {};
    let room = Math.max(0, this._limit - RESERVED_SPAN_ATTRIBUTES) - this._used;
    let droppedMetrics = 0;
    for (const [key, point] of latest) {
      if (room > 0) {
        attributes[METRIC_PREFIX + key] = toMetricAttributeValue(point.value);
        room--;
      } else {
        droppedMetrics++;
      }
    }
    if (this._droppedParams > 0) attributes[ATTR_RUN_DROPPED_PARAMS] = this._droppedParams;
    if (this._droppedTagKeys.size > 0) attributes[ATTR_RUN_DROPPED_TAGS] = this._droppedTagKeys.size;
    if (droppedMetrics > 0) attributes[ATTR_RUN_DROPPED_METRICS] = droppedMetrics;
    return attributes;
  }
}
