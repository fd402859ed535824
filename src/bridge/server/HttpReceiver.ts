// The bridge's OTLP/HTTP receiver: POST /v1/traces, /v1/logs, /v1/metrics (protobuf or JSON,
// gzip/deflate or not), GET /healthz and /readyz. It reads bodies within limits, checks the token,
// hands decoded requests to the ingest pipeline and answers as the OTLP/HTTP spec says:
// 200 with an export response in the request's content type (partialSuccess when records were
// rejected), 400 for a body that does not decode (not retried), 401 without the token, 413 over a
// size limit, 415 for an unknown content type or encoding, and 503 + Retry-After while the targets
// are busy, a run's identity is not known yet, or a request's data is not delivered in time, so a
// Collector holds the data and retries it later.

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BodyError, ByteBudget, decompressorFor, readBody } from './body.js';
import type { BearerToken } from './auth.js';
import { OtlpDecodeError, OTLP_SCHEMA_VERSION } from '../ingest/codec.js';
import type { ExportInputs, OtlpCodec, OtlpEncoding, OtlpSignal } from '../ingest/codec.js';
import { IngestError } from '../ingest/Ingest.js';
import type { Ingest } from '../ingest/Ingest.js';

export interface HttpReceiverOptions {
  host: string;
  port: number;
  token: BearerToken;
  /** Body bytes on the wire. */
  maxBodyBytes: number;
  /** Body bytes after decompression. */
  maxDecompressedBytes: number;
  /** Bytes of all bodies being read at once; past it, 503. */
  maxInflightBytes: number;
  retryAfterSeconds: number;
  /** Number of targets, for /readyz. */
  targets: number;
  log: (line: string) => void;
}

export interface HttpReceiverStats {
  /** Responses by HTTP status. */
  responses: Record<string, number>;
  /** Requests taken (200), by body encoding and compression: `protobuf`, `json+gzip`, … */
  accepted: Record<string, number>;
}

const MEDIA_TYPES = new Map<string, OtlpEncoding>([
  ['application/x-protobuf', 'protobuf'],
  ['application/protobuf', 'protobuf'],
  ['application/json', 'json'],
]);
const PATHS = new Map<string, OtlpSignal>([
  ['/v1/traces', 'traces'],
  ['/v1/logs', 'logs'],
  ['/v1/metrics', 'metrics'],
]);
/** google.rpc.Code for an HTTP status, as the OTLP spec maps them. */
const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14 };
const INGEST_STATUS: Record<IngestError['kind'], number> = { invalid: 400, 'too-large': 413, busy: 503 };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export class HttpReceiver {
  private readonly _server: Server;
  private readonly _options: HttpReceiverOptions;
  private readonly _codec: OtlpCodec;
  private readonly _ingest: Ingest;
  private readonly _budget: ByteBudget;
  private readonly _stats: HttpReceiverStats = { responses: {}, accepted: {} };
  private _port: number;
  private _listening = false;
  private _closing: Promise<void> | undefined;

  constructor(ingest: Ingest, codec: OtlpCodec, options: HttpReceiverOptions) {
    this._ingest = ingest;
    this._codec = codec;
    this._options = options;
    this._port = options.port;
    this._budget = new ByteBudget(options.maxInflightBytes);
    this._server = createServer((req, res) => {
      this._handle(req, res).catch((error: unknown) => {
        // Not expected: every known failure is an HttpError. Answer, and keep serving.
        options.log(`runtel bridge: internal error: ${error instanceof Error ? error.message : String(error)}`);
        if (!res.headersSent) this._send(res, 'json', 500, 'internal error');
        else res.destroy();
      });
    });
    // Slow or stuck clients cannot hold a connection (and its budget) for long.
    this._server.requestTimeout = 60_000;
    this._server.headersTimeout = 20_000;
    // Longer than the Collector's idle connections are kept, so it rarely reuses one just closed.
    this._server.keepAliveTimeout = 95_000;
    this._server.maxHeadersCount = 100;
  }

  get port(): number {
    return this._port;
  }

  stats(): HttpReceiverStats {
    return { responses: { ...this._stats.responses }, accepted: { ...this._stats.accepted } };
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this._server.once('error', reject);
      this._server.listen(this._port, this._options.host, () => {
        this._server.off('error', reject);
        this._port = (this._server.address() as AddressInfo).port;
        this._listening = true;
        resolve();
      });
    });
  }

  /** Stops taking requests; resolves once those in flight are answered. */
  close(): Promise<void> {
    this._closing ??= (async () => {
      if (!this._listening) return;
      // server.close() waits for every connection to end, and closes only those idle right now: a
      // keep-alive connection whose request is still in flight would stay open for keepAliveTimeout
      // (95 s). Answers sent from here on say `Connection: close` (see _respond), and idle
      // connections are closed as they appear.
      const sweep = setInterval(() => this._server.closeIdleConnections(), 50);
      await new Promise<void>((resolve) => {
        this._server.close(() => resolve());
        this._server.closeIdleConnections();
      });
      clearInterval(sweep);
    })();
    return this._closing;
  }

  private async _handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/healthz' || path === '/readyz') return this._health(req, res, path);
    const signal = PATHS.get(path);
    const encoding = MEDIA_TYPES.get(mediaType(req.headers['content-type']));
    try {
      if (signal === undefined) throw new HttpError(404, `no such endpoint: ${path.slice(0, 100)}`);
      if (req.method !== 'POST') throw new HttpError(405, 'OTLP/HTTP takes POST', { allow: 'POST' });
      if (!this._options.token.accepts(req.headers.authorization)) throw new HttpError(401, 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
      if (encoding === undefined) throw new HttpError(415, 'content type must be application/x-protobuf or application/json');
      const decompressor = decompressorFor(req.headers['content-encoding']);
      if (decompressor === undefined) throw new HttpError(415, 'content encoding must be gzip, deflate or identity');
      if (this._closing !== undefined) throw new HttpError(503, 'the bridge is shutting down', { 'retry-after': '5' });
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > this._options.maxBodyBytes) throw new HttpError(413, `body is larger than ${this._options.maxBodyBytes} bytes`);

      let body: { body: Buffer; held: number };
      try {
        body = await readBody(req, this._options, this._budget, decompressor);
      } catch (error) {
        if (error instanceof BodyError) throw new HttpError(error.status, error.message, error.status === 503 ? { 'retry-after': '1' } : {});
        throw error;
      }
      let request: ExportInputs;
      try {
        request = this._codec.decodeInputs(signal, encoding, body.body);
      } catch (error) {
        if (error instanceof OtlpDecodeError) throw new HttpError(400, error.message);
        throw error;
      } finally {
        this._budget.give(body.held);
      }
      let outcome;
      try {
        outcome = await this._ingest.export(signal, request);
      } catch (error) {
        if (!(error instanceof IngestError)) throw error;
        throw new HttpError(INGEST_STATUS[error.kind], error.message, error.kind === 'busy' ? { 'retry-after': String(error.retryAfterSeconds) } : {});
      }
      const how = `${encoding}${decompressor === null ? '' : `+${String(req.headers['content-encoding']).trim().toLowerCase()}`}`;
      this._stats.accepted[how] = (this._stats.accepted[how] ?? 0) + 1;
      this._respond(res, 200, encoding, this._codec.encodeResponse(signal, encoding, outcome.rejected, outcome.message));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      // A body left unread is discarded as it arrives (never kept), within the request timeout, so
      // the client reads the answer instead of a connection reset.
      if (!req.complete) req.resume();
      this._send(res, encoding ?? 'json', error.status, error.message, error.headers);
    }
  }

  private _health(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this._send(res, 'json', 405, 'GET only', { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      this._respond(res, 200, 'json', Buffer.from('{"status":"ok"}'));
      return;
    }
    const ready = this._listening && this._closing === undefined && !this._ingest.busy();
    const body = JSON.stringify({ status: ready ? 'ready' : this._closing !== undefined ? 'closing' : 'busy', targets: this._options.targets, otlpSchema: OTLP_SCHEMA_VERSION });
    this._respond(res, ready ? 200 : 503, 'json', Buffer.from(body), ready ? {} : { 'retry-after': String(this._options.retryAfterSeconds) });
  }

  private _send(res: ServerResponse, encoding: OtlpEncoding, status: number, message: string, headers: Record<string, string> = {}): void {
    this._respond(res, status, encoding, this._codec.encodeStatus(encoding, GRPC_CODE[status] ?? 2, message), headers);
  }

  private _respond(res: ServerResponse, status: number, encoding: OtlpEncoding, body: Buffer, headers: Record<string, string> = {}): void {
    const key = String(status);
    this._stats.responses[key] = (this._stats.responses[key] ?? 0) + 1;
    res.writeHead(status, {
      'content-type': encoding === 'protobuf' ? 'application/x-protobuf' : 'application/json',
      'content-length': String(body.length),
      ...(this._closing !== undefined ? { connection: 'close' } : {}),
      ...headers,
    });
    res.end(body);
  }
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}
