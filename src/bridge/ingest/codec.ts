// OTLP/HTTP bodies ⇄ objects, with the official schema (src/generated/otlp/descriptor.ts, generated from the
// opentelemetry-proto package by scripts/gen-otlp-descriptor.py) and protobufjs:
// - protobuf: `Type.decode`;
// - OTLP/JSON: protobufjs's ProtoJSON reader (`protobufjs/ext/protojson`), strict about types
//   and tolerant of unknown fields, as the OTLP spec asks. OTLP/JSON departs from ProtoJSON in one
//   place: trace and span ids are hex, not base64, so the JSON schema reads them as strings.
// Both give the same object shape (`toObject`: lowerCamelCase names, int64 as decimal strings),
// which src/otel/translate/otlpInputs.ts turns into the translator's inputs.

import protobuf from 'protobufjs';
import type { IConversionOptions, INamespace, Type } from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { OTLP_DESCRIPTOR_METADATA, OTLP_DESCRIPTOR_ROOT } from '../../generated/otlp/descriptor.js';
import type { OtelLogInput, OtelSpanInput } from '../../otel/translate/inputs.js';
import { logInputsFromOtlp, spanInputsFromOtlp } from '../../otel/translate/otlpInputs.js';
import { logInputsFromProtobuf, spanInputsFromProtobuf } from './otlpProtobuf.js';

export type OtlpSignal = 'traces' | 'logs' | 'metrics';
export type OtlpEncoding = 'protobuf' | 'json';

const SERVICE: Record<OtlpSignal, { package: string; request: string; response: string; rejected: string }> = {
  traces: { package: 'opentelemetry.proto.collector.trace.v1', request: 'ExportTraceServiceRequest', response: 'ExportTraceServiceResponse', rejected: 'rejectedSpans' },
  logs: { package: 'opentelemetry.proto.collector.logs.v1', request: 'ExportLogsServiceRequest', response: 'ExportLogsServiceResponse', rejected: 'rejectedLogRecords' },
  metrics: { package: 'opentelemetry.proto.collector.metrics.v1', request: 'ExportMetricsServiceRequest', response: 'ExportMetricsServiceResponse', rejected: 'rejectedDataPoints' },
};

const HEX_ID_FIELDS: ReadonlySet<string> = new Set(['traceId', 'spanId', 'parentSpanId']);

const TO_OBJECT: IConversionOptions = { longs: String, enums: Number, defaults: false, arrays: true, objects: false, oneofs: false };

/** What an export request carries for the ingest pipeline. */
export interface ExportInputs {
  logs: OtelLogInput[];
  spans: OtelSpanInput[];
  /** Data points of a metrics request (runtel's points travel as log records; these are counted). */
  metricDataPoints: number;
}

/** A body that does not decode as the signal's export request: answered 400. */
export class OtlpDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OtlpDecodeError';
  }
}

/** The schema version, for logs and `/readyz`. */
export const OTLP_SCHEMA_VERSION: string = OTLP_DESCRIPTOR_METADATA.opentelemetryProto;

/** OTLP/JSON's reading of the schema: hex ids are strings. */
function jsonVariant(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(jsonVariant);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'fields' && typeof value === 'object' && value !== null) {
      const fields: Record<string, unknown> = {};
      for (const [name, field] of Object.entries(value as Record<string, { type?: string }>)) {
        fields[name] = HEX_ID_FIELDS.has(name) && field.type === 'bytes' ? { ...field, type: 'string' } : jsonVariant(field);
      }
      out[key] = fields;
    } else {
      out[key] = jsonVariant(value);
    }
  }
  return out;
}

function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== 'object' || node === null || node instanceof Uint8Array) return node;
  return Object.fromEntries(Object.entries(node).filter(([key]) => !HEX_ID_FIELDS.has(key)).map(([key, value]) => [key, withoutIds(value)]));
}

interface SignalTypes {
  request: Type;
  jsonRequest: Type;
  response: Type;
  rejected: string;
}

export class OtlpCodec {
  private readonly _types: Record<OtlpSignal, SignalTypes>;
  private readonly _status: Type;
  private readonly _retryInfo: Type;

  constructor() {
    const root = protobuf.Root.fromJSON(OTLP_DESCRIPTOR_ROOT);
    const jsonRoot = protobuf.Root.fromJSON(jsonVariant(OTLP_DESCRIPTOR_ROOT) as INamespace);
    root.resolveAll();
    jsonRoot.resolveAll();
    const types = {} as Record<OtlpSignal, SignalTypes>;
    for (const signal of Object.keys(SERVICE) as OtlpSignal[]) {
      const s = SERVICE[signal];
      types[signal] = {
        request: root.lookupType(`${s.package}.${s.request}`),
        jsonRequest: jsonRoot.lookupType(`${s.package}.${s.request}`),
        response: root.lookupType(`${s.package}.${s.response}`),
        rejected: s.rejected,
      };
    }
    this._types = types;
    this._status = root.lookupType('google.rpc.Status');
    this._retryInfo = root.lookupType('google.rpc.RetryInfo');
  }

  /** The export request in `toObject` form. Throws OtlpDecodeError for anything that is not one. */
  decode(signal: OtlpSignal, encoding: OtlpEncoding, body: Buffer): Record<string, unknown> {
    const types = this._types[signal];
    try {
      if (encoding === 'protobuf') {
        return types.request.toObject(types.request.decode(body), TO_OBJECT);
      }
      const text = body.toString('utf8');
      const json: unknown = JSON.parse(text);
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('expected a JSON object');
      return types.jsonRequest.toObject(protojson.fromJson(types.jsonRequest, json, { ignoreUnknownFields: true }), TO_OBJECT);
    } catch (error) {
      // Anything the decoders throw (truncation, wrong wire types, wrong JSON types, too deep) is the body's fault.
      const message = error instanceof Error ? error.message : String(error);
      throw new OtlpDecodeError(`malformed ${encoding === 'json' ? 'OTLP/JSON' : 'OTLP/protobuf'} ${signal} request: ${message.slice(0, 200)}`);
    }
  }

  /**
   * The request's log records or spans as the translator reads them. Protobuf logs and traces are
   * read straight from the wire (otlpProtobuf.ts); JSON and metrics go through `decode`.
   */
  decodeInputs(signal: OtlpSignal, encoding: OtlpEncoding, body: Buffer): ExportInputs {
    if (encoding === 'protobuf' && signal !== 'metrics') {
      try {
        return signal === 'logs' ? { logs: logInputsFromProtobuf(body), spans: [], metricDataPoints: 0 } : { logs: [], spans: spanInputsFromProtobuf(body), metricDataPoints: 0 };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new OtlpDecodeError(`malformed OTLP/protobuf ${signal} request: ${message.slice(0, 200)}`);
      }
    }
    const request = this.decode(signal, encoding, body);
    if (signal === 'logs') return { logs: logInputsFromOtlp(request), spans: [], metricDataPoints: 0 };
    if (signal === 'traces') return { logs: [], spans: spanInputsFromOtlp(request), metricDataPoints: 0 };
    return { logs: [], spans: [], metricDataPoints: countDataPoints(request) };
  }

  /** A success response, with `partialSuccess` when some items were rejected. */
  encodeResponse(signal: OtlpSignal, encoding: OtlpEncoding, rejected = 0, errorMessage = ''): Buffer {
    const types = this._types[signal];
    const object = rejected > 0 || errorMessage !== '' ? { partialSuccess: { [types.rejected]: rejected, errorMessage } } : {};
    const message = types.response.fromObject(object);
    if (encoding === 'protobuf') return Buffer.from(types.response.encode(message).finish());
    return Buffer.from(JSON.stringify(protojson.toJson(types.response, message)));
  }

  /**
   * A google.rpc.Status whose details hold a google.rpc.RetryInfo (an OTLP/gRPC UNAVAILABLE's
   * `grpc-status-details-bin`): the sender waits that long before it retries.
   */
  encodeRetryStatus(code: number, message: string, retryAfterSeconds: number): Buffer {
    const retryInfo = this._retryInfo.encode(this._retryInfo.fromObject({ retryDelay: { seconds: Math.ceil(retryAfterSeconds) } })).finish();
    const status = this._status.fromObject({ code, message, details: [{ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: retryInfo }] });
    return Buffer.from(this._status.encode(status).finish());
  }

  /** A google.rpc.Status body for an error response (`code` is the gRPC code). */
  encodeStatus(encoding: OtlpEncoding, code: number, message: string): Buffer {
    const status = this._status.fromObject({ code, message });
    if (encoding === 'protobuf') return Buffer.from(this._status.encode(status).finish());
    return Buffer.from(JSON.stringify(protojson.toJson(this._status, status)));
  }

  /** An export request given in OTLP/JSON form, as protobuf (for tests and clients; JSON ids are not carried over). */
  encodeRequest(signal: OtlpSignal, json: Record<string, unknown>): Buffer {
    const types = this._types[signal];
    const object = types.jsonRequest.toObject(protojson.fromJson(types.jsonRequest, json, { ignoreUnknownFields: true }), TO_OBJECT);
    return Buffer.from(types.request.encode(types.request.fromObject(withoutIds(object) as Record<string, unknown>)).finish());
  }

  /** Decodes a response body (for tests and clients). */
  decodeResponse(signal: OtlpSignal, encoding: OtlpEncoding, body: Buffer): Record<string, unknown> {
    const type = this._types[signal].response;
    const message = encoding === 'protobuf' ? type.decode(body) : protojson.fromJson(type, JSON.parse(body.toString('utf8')), { ignoreUnknownFields: true });
    return type.toObject(message, TO_OBJECT);
  }

  /** Decodes a google.rpc.Status body (for tests and clients). */
  decodeStatus(encoding: OtlpEncoding, body: Buffer): { code?: number; message?: string } {
    const message = encoding === 'protobuf' ? this._status.decode(body) : protojson.fromJson(this._status, JSON.parse(body.toString('utf8')), { ignoreUnknownFields: true });
    return this._status.toObject(message, TO_OBJECT);
  }
}

function countDataPoints(request: Record<string, unknown>): number {
  let count = 0;
  for (const rm of asArray(request.resourceMetrics)) {
    for (const sm of asArray((rm as Record<string, unknown>).scopeMetrics)) {
      for (const metric of asArray((sm as Record<string, unknown>).metrics)) {
        const m = metric as Record<string, Record<string, unknown> | undefined>;
        const data = m.gauge ?? m.sum ?? m.histogram ?? m.exponentialHistogram ?? m.summary;
        count += asArray(data?.dataPoints).length;
      }
    }
  }
  return count;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
