// Decoded OTLP export requests → the translator's normalised inputs (see inputs.ts).
//
// The input is an OTLP request as protobufjs's `toObject` gives it (lowerCamelCase field names,
// int64 as decimal strings, bytes as Uint8Array), whichever wire encoding it came in: the bridge
// decodes protobuf with the schema and OTLP/JSON with protobufjs's ProtoJSON reader into the same
// message types. Numbers in OTLP/JSON written as JSON numbers are accepted too.
//
// Attribute values become plain JavaScript as the OTel JS SDK has them: strings, booleans, numbers
// (an int64 stays a decimal string when it is beyond 2^53, so nothing is rounded here), arrays and
// objects (kvlist). Timestamps become milliseconds exactly as `hrTimeToMilliseconds` (@opentelemetry/core) computes them from
// the same nanoseconds, so a record takes the same value through the SDK and through OTLP.

import type { AttributeMap, OtelLogInput, OtelSpanEventInput, OtelSpanInput } from './inputs.js';

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** An int64 (decimal string, number or bigint) as a number when exact, else its decimal string. */
function int64(value: unknown): number | string | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'string' && /^-?\d+$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  return undefined;
}

/** An OTLP AnyValue as plain JavaScript; undefined when it holds no value. */
export function fromAnyValue(value: unknown, depth = 0): unknown {
  if (!isObject(value) || depth > 32) return undefined;
  if (value.stringValue !== undefined) return typeof value.stringValue === 'string' ? value.stringValue : undefined;
  if (value.boolValue !== undefined) return value.boolValue === true;
  if (value.intValue !== undefined) return int64(value.intValue);
  if (value.doubleValue !== undefined) {
    const d = value.doubleValue;
    return typeof d === 'number' ? d : typeof d === 'string' ? Number(d) : undefined;
  }
  if (value.arrayValue !== undefined) return list((value.arrayValue as Obj | undefined)?.values).map((v) => fromAnyValue(v, depth + 1));
  if (value.kvlistValue !== undefined) return fromAttributes((value.kvlistValue as Obj | undefined)?.values, depth + 1);
  if (value.bytesValue !== undefined) return value.bytesValue;
  return undefined;
}

/** OTLP `repeated KeyValue` → an attribute map. Later duplicates win, as in the SDK. Empty values are left out. */
export function fromAttributes(attributes: unknown, depth = 0): AttributeMap {
  const out: AttributeMap = {};
  for (const kv of list(attributes)) {
    if (!isObject(kv) || typeof kv.key !== 'string') continue;
    const value = fromAnyValue(kv.value, depth);
    if (value !== undefined) out[kv.key] = value;
  }
  return out;
}

/**
 * Nanoseconds since the epoch (fixed64 as a decimal string or a number) → milliseconds, computed
 * as `hrTimeToMilliseconds` (@opentelemetry/core) does from [seconds, nanoseconds]. Undefined for zero or a malformed value.
 */
export function nanosToMillis(value: unknown): number | undefined {
  let nanos: bigint;
  if (typeof value === 'string' && /^\d+$/.test(value)) nanos = BigInt(value);
  else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) nanos = BigInt(value);
  else if (typeof value === 'number' && Number.isFinite(value) && value > 0) nanos = BigInt(Math.round(value));
  else if (typeof value === 'bigint' && value >= 0n) nanos = value;
  else return undefined;
  if (nanos === 0n) return undefined;
  return Number(nanos / 1_000_000_000n) * 1e3 + Number(nanos % 1_000_000_000n) / 1e6;
}

/**
 * The log records of an ExportLogsServiceRequest, in request order. A record's time is its
 * `timeUnixNano`, else its `observedTimeUnixNano` (as the OTLP spec says), else 0.
 */
export function logInputsFromOtlp(request: unknown): OtelLogInput[] {
  const out: OtelLogInput[] = [];
  if (!isObject(request)) return out;
  for (const resourceLogs of list(request.resourceLogs)) {
    if (!isObject(resourceLogs)) continue;
    for (const scopeLogs of list(resourceLogs.scopeLogs)) {
      if (!isObject(scopeLogs)) continue;
      for (const record of list(scopeLogs.logRecords)) {
        if (!isObject(record)) continue;
        out.push({
          eventName: typeof record.eventName === 'string' && record.eventName !== '' ? record.eventName : undefined,
          attributes: fromAttributes(record.attributes),
          timeMillis: nanosToMillis(record.timeUnixNano) ?? nanosToMillis(record.observedTimeUnixNano) ?? 0,
        });
      }
    }
  }
  return out;
}

/** The spans of an ExportTraceServiceRequest, in request order. */
export function spanInputsFromOtlp(request: unknown): OtelSpanInput[] {
  const out: OtelSpanInput[] = [];
  if (!isObject(request)) return out;
  for (const resourceSpans of list(request.resourceSpans)) {
    if (!isObject(resourceSpans)) continue;
    for (const scopeSpans of list(resourceSpans.scopeSpans)) {
      if (!isObject(scopeSpans)) continue;
      for (const span of list(scopeSpans.spans)) {
        if (!isObject(span)) continue;
        const startMillis = nanosToMillis(span.startTimeUnixNano) ?? 0;
        const status = isObject(span.status) ? span.status : {};
        const events: OtelSpanEventInput[] = [];
        for (const event of list(span.events)) {
          if (!isObject(event)) continue;
          events.push({ name: typeof event.name === 'string' ? event.name : '', timeMillis: nanosToMillis(event.timeUnixNano) ?? startMillis, attributes: fromAttributes(event.attributes) });
        }
        out.push({
          name: typeof span.name === 'string' ? span.name : '',
          startMillis,
          endMillis: nanosToMillis(span.endTimeUnixNano) ?? startMillis,
          attributes: fromAttributes(span.attributes),
          status: {
            code: typeof status.code === 'number' ? status.code : 0,
            ...(typeof status.message === 'string' && status.message !== '' ? { message: status.message } : {}),
          },
          events,
        });
      }
    }
  }
  return out;
}
