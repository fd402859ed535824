// OTLP/protobuf export requests for logs and traces read straight into the translator's inputs,
// with protobufjs's wire Reader: no message objects in between (decoding into protobufjs objects
// and converting them cost the bridge most of its time per point). The result is the same as
// `codec.decode` followed by otlpInputs.ts, which stays the path for OTLP/JSON; test/bridge/decode
// compares the two. Field numbers are opentelemetry-proto's (src/generated/otlp/descriptor.ts).

import protobuf from 'protobufjs/minimal.js';
import type { AttributeMap, OtelLogInput, OtelSpanEventInput, OtelSpanInput } from '../../otel/translate/inputs.js';

type Reader = protobuf.Reader;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const MAX_DEPTH = 32;

/**
 * Short strings seen before (attribute keys, metric keys, run ids repeat in every record) are
 * handed out again instead of being decoded and allocated anew: less time and far less garbage.
 */
const INTERNED_MAX_BYTES = 64;
const INTERNED_MAX_ENTRIES = 8192;
const interned = new Map<number, { bytes: Uint8Array; value: string }>();

function readString(reader: Reader): string {
  const length = reader.uint32();
  const start = reader.pos;
  const end = start + length;
  if (end > reader.len) throw new ProtobufShapeError('a string runs past its message');
  reader.pos = end;
  const buf = reader.buf;
  if (length > INTERNED_MAX_BYTES) return protobuf.util.utf8.read(buf, start, end);
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ buf[i]!, 0x01000193);
  hash = (hash ^ length) >>> 0;
  const hit = interned.get(hash);
  if (hit !== undefined && hit.bytes.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (hit.bytes[i] !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return hit.value;
  }
  const value = protobuf.util.utf8.read(buf, start, end);
  if (interned.size >= INTERNED_MAX_ENTRIES) interned.clear();
  interned.set(hash, { bytes: buf.slice(start, end), value });
  return value;
}

/** A body that is not the message it should be. */
export class ProtobufShapeError extends Error {}

/** ExportLogsServiceRequest → log inputs, in request order. */
export function logInputsFromProtobuf(body: Uint8Array): OtelLogInput[] {
  const out: OtelLogInput[] = [];
  const reader = protobuf.Reader.create(body);
  // resource_logs (1) → scope_logs (2) → log_records (2)
  each(reader, reader.len, 1, (end) => each(reader, end, 2, (end2) => each(reader, end2, 2, (end3) => out.push(logRecord(reader, end3)))));
  return out;
}

/** ExportTraceServiceRequest → span inputs, in request order. */
export function spanInputsFromProtobuf(body: Uint8Array): OtelSpanInput[] {
  const out: OtelSpanInput[] = [];
  const reader = protobuf.Reader.create(body);
  // resource_spans (1) → scope_spans (2) → spans (2)
  each(reader, reader.len, 1, (end) => each(reader, end, 2, (end2) => each(reader, end2, 2, (end3) => out.push(span(reader, end3)))));
  return out;
}

/** Calls `read(end)` for every length-delimited field `field` up to `end`; skips the other fields. */
function each(reader: Reader, end: number, field: number, read: (end: number) => void): void {
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag >>> 3 === field) {
      expectWire(tag, LENGTH);
      const stop = reader.uint32() + reader.pos;
      if (stop > end) throw new ProtobufShapeError(`field ${field} runs past its message`);
      read(stop);
      reader.pos = stop;
    } else {
      reader.skipType(tag & 7);
    }
  }
  if (reader.pos !== end) throw new ProtobufShapeError('a message runs past its length');
}

function logRecord(reader: Reader, end: number): OtelLogInput {
  let time: number | undefined;
  let observed: number | undefined;
  let eventName: string | undefined;
  const attributes: AttributeMap = {};
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag >>> 3) {
      case 1:
        time = fixed64Millis(reader, tag);
        break;
      case 11:
        observed = fixed64Millis(reader, tag);
        break;
      case 6:
        keyValue(reader, tag, attributes, 0);
        break;
      case 12: {
        expectWire(tag, LENGTH);
        const name = readString(reader);
        eventName = name === '' ? undefined : name;
        break;
      }
      default:
        reader.skipType(tag & 7);
    }
  }
  return { eventName, attributes, timeMillis: time ?? observed ?? 0 };
}

function span(reader: Reader, end: number): OtelSpanInput {
  let name = '';
  let start: number | undefined;
  let stop: number | undefined;
  const attributes: AttributeMap = {};
  const events: Array<{ name: string; time: number | undefined; attributes: AttributeMap }> = [];
  const status: { code: number; message?: string } = { code: 0 };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag >>> 3) {
      case 5:
        expectWire(tag, LENGTH);
        name = readString(reader);
        break;
      case 7:
        start = fixed64Millis(reader, tag);
        break;
      case 8:
        stop = fixed64Millis(reader, tag);
        break;
      case 9:
        keyValue(reader, tag, attributes, 0);
        break;
      case 11:
        events.push(spanEvent(reader, tag));
        break;
      case 15:
        spanStatus(reader, tag, status);
        break;
      default:
        reader.skipType(tag & 7);
    }
  }
  const startMillis = start ?? 0;
  const outEvents: OtelSpanEventInput[] = events.map((e) => ({ name: e.name, timeMillis: e.time ?? startMillis, attributes: e.attributes }));
  return { name, startMillis, endMillis: stop ?? startMillis, attributes, status, events: outEvents };
}

function spanEvent(reader: Reader, tag: number): { name: string; time: number | undefined; attributes: AttributeMap } {
  expectWire(tag, LENGTH);
  const end = reader.uint32() + reader.pos;
  const event = { name: '', time: undefined as number | undefined, attributes: {} as AttributeMap };
  while (reader.pos < end) {
    const t = reader.uint32();
    switch (t >>> 3) {
      case 1:
        event.time = fixed64Millis(reader, t);
        break;
      case 2:
        expectWire(t, LENGTH);
        event.name = readString(reader);
        break;
      case 3:
        keyValue(reader, t, event.attributes, 0);
        break;
      default:
        reader.skipType(t & 7);
    }
  }
  return event;
}

function spanStatus(reader: Reader, tag: number, status: { code: number; message?: string }): void {
  expectWire(tag, LENGTH);
  const end = reader.uint32() + reader.pos;
  while (reader.pos < end) {
    const t = reader.uint32();
    if (t >>> 3 === 2) {
      expectWire(t, LENGTH);
      const message = readString(reader);
      if (message !== '') status.message = message;
    } else if (t >>> 3 === 3) {
      expectWire(t, VARINT);
      status.code = reader.int32();
    } else {
      reader.skipType(t & 7);
    }
  }
}

/** One KeyValue into `out` (a later duplicate key wins; a KeyValue without a value is left out). */
function keyValue(reader: Reader, tag: number, out: AttributeMap, depth: number): void {
  expectWire(tag, LENGTH);
  const end = reader.uint32() + reader.pos;
  let key: string | undefined;
  let value: unknown;
  while (reader.pos < end) {
    const t = reader.uint32();
    if (t >>> 3 === 1) {
      expectWire(t, LENGTH);
      key = readString(reader);
    } else if (t >>> 3 === 2) {
      value = anyValue(reader, t, depth);
    } else {
      reader.skipType(t & 7);
    }
  }
  if (key !== undefined && value !== undefined) out[key] = value;
}

/** An AnyValue as plain JavaScript (as otlpInputs.ts's fromAnyValue); undefined when it holds none. */
function anyValue(reader: Reader, tag: number, depth: number): unknown {
  expectWire(tag, LENGTH);
  const end = reader.uint32() + reader.pos;
  if (depth > MAX_DEPTH) throw new ProtobufShapeError('values nested too deep');
  let value: unknown;
  while (reader.pos < end) {
    const t = reader.uint32();
    switch (t >>> 3) {
      case 1:
        expectWire(t, LENGTH);
        value = readString(reader);
        break;
      case 2:
        expectWire(t, VARINT);
        value = reader.bool();
        break;
      case 3: {
        expectWire(t, VARINT);
        value = int64(reader.int64());
        break;
      }
      case 4:
        expectWire(t, FIXED64);
        value = reader.double();
        break;
      case 5: {
        // ArrayValue { repeated AnyValue values = 1 }
        expectWire(t, LENGTH);
        const stop = reader.uint32() + reader.pos;
        const values: unknown[] = [];
        while (reader.pos < stop) {
          const v = reader.uint32();
          if (v >>> 3 === 1) values.push(anyValue(reader, v, depth + 1));
          else reader.skipType(v & 7);
        }
        value = values;
        break;
      }
      case 6: {
        // KeyValueList { repeated KeyValue values = 1 }
        expectWire(t, LENGTH);
        const stop = reader.uint32() + reader.pos;
        const values: AttributeMap = {};
        while (reader.pos < stop) {
          const v = reader.uint32();
          if (v >>> 3 === 1) keyValue(reader, v, values, depth + 1);
          else reader.skipType(v & 7);
        }
        value = values;
        break;
      }
      case 7:
        expectWire(t, LENGTH);
        value = reader.bytes();
        break;
      default:
        reader.skipType(t & 7);
    }
  }
  if (reader.pos !== end) throw new ProtobufShapeError('a value runs past its length');
  return value;
}

/** An int64 as a number when exact, else its decimal string (as toObject with `longs: String` gives it). */
function int64(value: number | { low: number; high: number }): number | string {
  if (typeof value === 'number') return value;
  const n = value.high * 4294967296 + (value.low >>> 0);
  return Number.isSafeInteger(n) ? n : ((BigInt(value.high) << 32n) + BigInt(value.low >>> 0)).toString();
}

/** A fixed64 of nanoseconds since the epoch → milliseconds, exactly as hrTimeToMilliseconds; undefined for 0. */
function fixed64Millis(reader: Reader, tag: number): number | undefined {
  expectWire(tag, FIXED64);
  const lo = readUint32LE(reader);
  const hi = readUint32LE(reader);
  return nanosToMillisParts(hi, lo);
}

function readUint32LE(reader: Reader): number {
  const buf = reader.buf;
  const p = reader.pos;
  if (p + 4 > reader.len) throw new ProtobufShapeError('a fixed64 is cut short');
  reader.pos = p + 4;
  return (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) >>> 0;
}

/**
 * `hi·2^32 + lo` nanoseconds → `seconds·1e3 + rest/1e6` milliseconds, with exact integer seconds and
 * rest (as [seconds, nanoseconds] gives them) in double arithmetic: every intermediate stays below 2^53.
 */
export function nanosToMillisParts(hi: number, lo: number): number | undefined {
  if (hi === 0 && lo === 0) return undefined;
  let seconds = Math.floor((hi * 4294967296 + lo) / 1e9);
  const a1 = Math.floor(seconds / 65536);
  const a0 = seconds - a1 * 65536;
  // rest = hi·2^32 + lo − seconds·1e9, with seconds = a1·2^16 + a0
  let rest = (hi * 65536 - a1 * 1e9) * 65536 + lo - a0 * 1e9;
  while (rest < 0) {
    seconds--;
    rest += 1e9;
  }
  while (rest >= 1e9) {
    seconds++;
    rest -= 1e9;
  }
  return seconds * 1e3 + rest / 1e6;
}

function expectWire(tag: number, wire: number): void {
  if ((tag & 7) !== wire) throw new ProtobufShapeError(`field ${tag >>> 3} has wire type ${tag & 7}, expected ${wire}`);
}
