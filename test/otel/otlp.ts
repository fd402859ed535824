// Decoding OTLP for the tests: a protobuf schema of the OTLP logs and trace requests (the fields the
// tests read, numbered as in opentelemetry-proto), and JSON/protobuf normalisation. (The HTTP sink is startOtlpSink in real/util.ts.)

import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message LogRecord {
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  AnyValue body = 5;
  repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
message Status { string message = 2; int32 code = 3; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: false }).root;
const LogsRequest = root.lookupType('otlp.ExportLogsServiceRequest');
const TraceRequest = root.lookupType('otlp.ExportTraceServiceRequest');

/** An OTLP KeyValue list as JSON mapping gives it (what both decoders below return). */
export type OtlpAttributes = Array<{ key: string; value: Record<string, unknown> }>;

export interface OtlpLogRecord {
  timeUnixNano: string;
  eventName?: string;
  traceId?: string;
  spanId?: string;
  attributes: OtlpAttributes;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: OtlpAttributes;
  status?: { code?: number; message?: string };
}

export interface OtlpResource {
  attributes: OtlpAttributes;
}

const toObjectOptions = { longs: String, bytes: String, defaults: false, oneofs: false } as const;

function base64ToHex(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? Buffer.from(value, 'base64').toString('hex') : undefined;
}

/** Decodes a protobuf ExportLogsServiceRequest into the JSON mapping's shape (hex ids, string longs). */
export function decodeProtobufLogs(bytes: Uint8Array): { resource: OtlpResource; records: OtlpLogRecord[] }[] {
  const request = LogsRequest.toObject(LogsRequest.decode(bytes), toObjectOptions) as {
    resourceLogs?: Array<{ resource?: OtlpResource; scopeLogs?: Array<{ logRecords?: Array<Record<string, unknown>> }> }>;
  };
  return (request.resourceLogs ?? []).map((rl) => ({
    resource: rl.resource ?? { attributes: [] },
    records: (rl.scopeLogs ?? []).flatMap((sl) =>
      (sl.logRecords ?? []).map((r) => ({
        timeUnixNano: String(r.timeUnixNano),
        eventName: r.eventName as string | undefined,
        traceId: base64ToHex(r.traceId),
        spanId: base64ToHex(r.spanId),
        attributes: (r.attributes as OtlpAttributes | undefined) ?? [],
      })),
    ),
  }));
}

/** Reads a JSON ExportLogsServiceRequest. */
export function decodeJsonLogs(bytes: Uint8Array): { resource: OtlpResource; records: OtlpLogRecord[] }[] {
  const request = JSON.parse(Buffer.from(bytes).toString('utf8')) as {
    resourceLogs?: Array<{ resource?: OtlpResource; scopeLogs?: Array<{ logRecords?: OtlpLogRecord[] }> }>;
  };
  return (request.resourceLogs ?? []).map((rl) => ({
    resource: rl.resource ?? { attributes: [] },
    records: (rl.scopeLogs ?? []).flatMap((sl) => sl.logRecords ?? []),
  }));
}

export function decodeProtobufSpans(bytes: Uint8Array): { resource: OtlpResource; spans: OtlpSpan[] }[] {
  const request = TraceRequest.toObject(TraceRequest.decode(bytes), toObjectOptions) as {
    resourceSpans?: Array<{ resource?: OtlpResource; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }>;
  };
  return (request.resourceSpans ?? []).map((rs) => ({
    resource: rs.resource ?? { attributes: [] },
    spans: (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: base64ToHex(s.traceId)!,
        spanId: base64ToHex(s.spanId)!,
        parentSpanId: base64ToHex(s.parentSpanId),
        name: s.name as string,
        attributes: (s.attributes as OtlpAttributes | undefined) ?? [],
        status: s.status as OtlpSpan['status'],
      })),
    ),
  }));
}

export function decodeJsonSpans(bytes: Uint8Array): { resource: OtlpResource; spans: OtlpSpan[] }[] {
  const request = JSON.parse(Buffer.from(bytes).toString('utf8')) as {
    resourceSpans?: Array<{ resource?: OtlpResource; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
  };
  return (request.resourceSpans ?? []).map((rs) => ({
    resource: rs.resource ?? { attributes: [] },
    spans: (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? []),
  }));
}

/** An AnyValue as a plain JS value (int64 as number; the raw `doubleValue` null of JSON stays null). */
export function anyValue(value: Record<string, unknown>): unknown {
  if ('stringValue' in value) return value.stringValue;
  if ('boolValue' in value) return value.boolValue;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return value.doubleValue;
  return undefined;
}

export function attributesOf(list: OtlpAttributes): Record<string, unknown> {
  return Object.fromEntries(list.map((kv) => [kv.key, anyValue(kv.value)]));
}

/** The AnyValue field name the value travelled in. */
export function wireType(list: OtlpAttributes, key: string): string | undefined {
  const found = list.find((kv) => kv.key === key);
  return found === undefined ? undefined : Object.keys(found.value)[0];
}
