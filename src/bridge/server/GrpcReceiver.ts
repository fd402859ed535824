// The bridge's OTLP/gRPC receiver (@grpc/grpc-js): the Export methods of
// opentelemetry.proto.collector.{trace,logs,metrics}.v1.*Service, beside the HTTP receiver, into the
// same ingest pipeline. gzip and deflate requests are decompressed by grpc-js. Answers follow the
// OTLP spec: OK with an export response (partial success when records were rejected),
// UNAUTHENTICATED without the token, INVALID_ARGUMENT for a message that does not decode,
// RESOURCE_EXHAUSTED over a size limit, and UNAVAILABLE with a google.rpc.RetryInfo while the
// targets are busy or a request's data is not delivered in time, which the sender retries.

import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { ServerUnaryCall, ServiceDefinition, sendUnaryData } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import type { BearerToken } from './auth.js';
import { OtlpDecodeError } from '../ingest/codec.js';
import type { OtlpCodec, OtlpSignal } from '../ingest/codec.js';
import { IngestError } from '../ingest/Ingest.js';
import type { Ingest } from '../ingest/Ingest.js';

export interface GrpcReceiverOptions {
  host: string;
  port: number;
  token: BearerToken;
  /** Bytes of one message after decompression (grpc-js answers RESOURCE_EXHAUSTED above). */
  maxMessageBytes: number;
  /**
   * A connection is closed this long after it opened (clients reconnect at once), and a call still
   * in flight then is cut off after maxConnectionAgeGraceMillis: a client that never finishes its
   * message cannot hold a stream for ever.
   */
  maxConnectionAgeMillis: number;
  maxConnectionAgeGraceMillis: number;
  log: (line: string) => void;
}

export interface GrpcReceiverStats {
  /** Calls answered, by gRPC status name: `OK`, `UNAVAILABLE`, … */
  grpcResponses: Record<string, number>;
}

const SERVICE: Record<OtlpSignal, string> = {
  traces: 'opentelemetry.proto.collector.trace.v1.TraceService',
  logs: 'opentelemetry.proto.collector.logs.v1.LogsService',
  metrics: 'opentelemetry.proto.collector.metrics.v1.MetricsService',
};
const CODE: Record<IngestError['kind'], status> = { invalid: status.INVALID_ARGUMENT, 'too-large': status.RESOURCE_EXHAUSTED, busy: status.UNAVAILABLE };
const RAW = (value: Buffer): Buffer => value;

export class GrpcReceiver {
  private readonly _server: Server;
  private readonly _options: GrpcReceiverOptions;
  private readonly _ingest: Ingest;
  private readonly _codec: OtlpCodec;
  private readonly _stats: GrpcReceiverStats = { grpcResponses: {} };
  private _port: number;
  private _closing: Promise<void> | undefined;

  constructor(ingest: Ingest, codec: OtlpCodec, options: GrpcReceiverOptions) {
    this._ingest = ingest;
    this._codec = codec;
    this._options = options;
    this._port = options.port;
    this._server = new Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_connection_age_ms': options.maxConnectionAgeMillis,
      'grpc.max_connection_age_grace_ms': options.maxConnectionAgeGraceMillis,
      'grpc.max_concurrent_streams': 100,
    });
    for (const signal of Object.keys(SERVICE) as OtlpSignal[]) {
      // Messages stay raw bytes here: the codec reads them (straight from the wire for logs and traces).
      const definition: ServiceDefinition = {
        Export: { path: `/${SERVICE[signal]}/Export`, requestStream: false, responseStream: false, requestSerialize: RAW, requestDeserialize: RAW, responseSerialize: RAW, responseDeserialize: RAW, originalName: 'export' },
      };
      this._server.addService(definition, { Export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => void this._export(signal, call, callback) });
    }
  }

  get port(): number {
    return this._port;
  }

  stats(): GrpcReceiverStats {
    return { grpcResponses: { ...this._stats.grpcResponses } };
  }

  listen(): Promise<void> {
    const host = isIP(this._options.host) === 6 ? `[${this._options.host}]` : this._options.host;
    return new Promise((resolve, reject) => {
      this._server.bindAsync(`${host}:${this._port}`, ServerCredentials.createInsecure(), (error, port) => {
        if (error) return reject(error);
        this._port = port;
        resolve();
      });
    });
  }

  /** Stops taking calls; resolves once those in flight are answered (or cut off after the grace). */
  close(): Promise<void> {
    this._closing ??= new Promise<void>((resolve) => {
      // grpc-js does not always call tryShutdown's callback once forceShutdown has cut the calls off.
      const timer = setTimeout(() => {
        this._server.forceShutdown();
        resolve();
      }, this._options.maxConnectionAgeGraceMillis);
      timer.unref();
      this._server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this._closing;
  }

  private async _export(signal: OtlpSignal, call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): Promise<void> {
    try {
      const authorization = call.metadata.get('authorization')[0];
      if (!this._options.token.accepts(typeof authorization === 'string' ? authorization : undefined)) return this._fail(callback, status.UNAUTHENTICATED, 'missing or wrong bearer token');
      if (this._closing !== undefined) return this._busy(callback, 'the bridge is shutting down', 5);
      let inputs;
      try {
        inputs = this._codec.decodeInputs(signal, 'protobuf', call.request);
      } catch (error) {
        if (error instanceof OtlpDecodeError) return this._fail(callback, status.INVALID_ARGUMENT, error.message);
        throw error;
      }
      const outcome = await this._ingest.export(signal, inputs);
      this._count('OK');
      callback(null, this._codec.encodeResponse(signal, 'protobuf', outcome.rejected, outcome.message));
    } catch (error) {
      if (error instanceof IngestError) {
        if (error.kind === 'busy') return this._busy(callback, error.message, error.retryAfterSeconds);
        return this._fail(callback, CODE[error.kind], error.message);
      }
      this._options.log(`runtel bridge: internal error (gRPC): ${error instanceof Error ? error.message : String(error)}`);
      this._fail(callback, status.INTERNAL, 'internal error');
    }
  }

  /** UNAVAILABLE with a RetryInfo: the OTLP spec's "retry after this delay". */
  private _busy(callback: sendUnaryData<Buffer>, message: string, retryAfterSeconds: number): void {
    const metadata = new Metadata();
    metadata.set('grpc-status-details-bin', this._codec.encodeRetryStatus(status.UNAVAILABLE, message, retryAfterSeconds));
    this._fail(callback, status.UNAVAILABLE, message, metadata);
  }

  private _fail(callback: sendUnaryData<Buffer>, code: status, details: string, metadata?: Metadata): void {
    this._count(status[code]);
    callback({ code, details, ...(metadata !== undefined ? { metadata } : {}) });
  }

  private _count(name: string): void {
    this._stats.grpcResponses[name] = (this._stats.grpcResponses[name] ?? 0) + 1;
  }
}
