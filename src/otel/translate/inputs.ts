// The normalised shapes the translator reads, and adapters from the OTel JS SDK's objects.
// (The bridge adapts decoded OTLP to the same shapes.)

import { hrTimeToMilliseconds } from '@opentelemetry/core';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** Attribute values as plain JavaScript: strings, numbers (or int64 decimal strings), booleans, arrays. */
export type AttributeMap = Record<string, unknown>;

export interface OtelLogInput {
  /** The LogRecord's event name; empty or undefined falls back to an `event.name` attribute. */
  eventName: string | undefined;
  attributes: AttributeMap;
  /** The record's timestamp, in milliseconds since the epoch. */
  timeMillis: number;
}

export interface OtelSpanEventInput {
  name: string;
  timeMillis: number;
  attributes: AttributeMap;
}

export interface OtelSpanInput {
  name: string;
  startMillis: number;
  endMillis: number;
  attributes: AttributeMap;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  events: OtelSpanEventInput[];
}

export function fromReadableLogRecord(record: ReadableLogRecord): OtelLogInput {
  return { eventName: record.eventName, attributes: record.attributes, timeMillis: hrTimeToMilliseconds(record.hrTime) };
}

export function fromReadableSpan(span: ReadableSpan): OtelSpanInput {
  return {
    name: span.name,
    startMillis: hrTimeToMilliseconds(span.startTime),
    endMillis: hrTimeToMilliseconds(span.endTime),
    attributes: span.attributes,
    status: { code: span.status.code, ...(span.status.message !== undefined ? { message: span.status.message } : {}) },
    events: span.events.map((e) => ({ name: e.name, timeMillis: hrTimeToMilliseconds(e.time), attributes: e.attributes ?? {} })),
  };
}
