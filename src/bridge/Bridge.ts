// The bridge: an OTLP/HTTP receiver (POST /v1/traces, /v1/logs, /v1/metrics; protobuf or JSON,
// gzip/deflate or not) that turns runtel's conventions into runs with the one shared translator and
// forwards them with the MLflow and W&B senders. See docs/bridge.md.
//
// Answers follow the OTLP/HTTP spec: 200 with an export response in the request's content type
// (partialSuccess when records were rejected), 400 for a body that does not decode (not retried),
// 401 without the token, 413 over a size limit, 415 for an unknown content type or encoding, and
// 503 + Retry-After while the senders' queues are full or a run's identity is still unknown, so a
// Collector holds the data and retries it later.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import type { BackendErrorHandler } from '../core/errors.js';
import { getBooleanFromEnv, getNumberFromEnv, getStringFromEnv } from '../core/env.js';
import { redactUrl } from '../core/http.js';
import { MlflowBackend } from '../mlflow/MlflowBackend.js';
import type { MlflowBackendOptions } from '../mlflow/MlflowBackend.js';
import { WandbBackend } from '../wandb/WandbBackend.js';
import type { WandbBackendOptions } from '../wandb/WandbBackend.js';
import {
  ATTR_ARTIFACT_ERROR,
  ATTR_ARTIFACT_NAME,
  ATTR_ARTIFACT_PATH,
  ATTR_ARTIFACT_SHA256,
  ATTR_EVENT_NAME,
  ATTR_EXPERIMENT_NAME,
  ATTR_RUN_ID,
  ATTR_RUN_NAME,
  ATTR_RUN_PARENT_ID,
  EVENT_ARTIFACT,
  EVENT_METRIC,
  EVENT_RUN_START,
} from '../otel/conventions.js';
import { OtelRunTranslator } from '../otel/translate/OtelRunTranslator.js';
import { OtelRunSink } from '../otel/translate/RunEventExporters.js';
import type { OtelLogInput, OtelSpanInput } from '../otel/translate/inputs.js';
import { logInputsFromOtlp, spanInputsFromOtlp } from '../otel/translate/otlpInputs.js';
import { BodyError, ByteBudget, decompressorFor, readBody } from './body.js';
import { FinishSettler } from './FinishSettler.js';
import { OtlpCodec, OtlpDecodeError, OTLP_SCHEMA_VERSION } from './otlp/codec.js';
import type { OtlpEncoding, OtlpSignal } from './otlp/codec.js';
import { RunDirectory, mlflowRunFinder } from './RunDirectory.js';
import type { Resolution, RunFinder, RunIdentity } from './RunDirectory.js';

export const DEFAULT_BRIDGE_PORT = 4320;
export const DEFAULT_BRIDGE_HOST = '127.0.0.1';
const DEFAULT_MAX_QUEUED_POINTS = 200_000;
/** Tag (MLflow) for an artifact the bridge cannot copy: `runtel.artifact.<name>`. */
export const ARTIFACT_TAG_PREFIX = 'runtel.artifact.';

export interface BridgeOptions {
  /** Default: env `RUNTEL_BRIDGE_HOST`, else 127.0.0.1. */
  host?: string;
  /** Default: env `RUNTEL_BRIDGE_PORT`, else 4320. 0 picks a free port. */
  port?: number;
  /** Bearer token every OTLP request must carry. Default: env `RUNTEL_BRIDGE_TOKEN`. */
  token?: string;
  /** Listen on a non-loopback address without a token. Default: env `RUNTEL_BRIDGE_ALLOW_INSECURE`, else false. */
  allowInsecure?: boolean;
  /**
   * Where runs go. Default: an MlflowBackend when MLFLOW_TRACKING_URI is set (or `mlflow` is given)
   * and a WandbBackend when WANDB_API_KEY is set (or `wandb` is given), both with `findExistingRuns`.
   */
  backends?: RunBackend[];
  /** Options of the MLflow target, or false for none. */
  mlflow?: MlflowBackendOptions | false;
  /** Options of the W&B target, or false for none. */
  wandb?: WandbBackendOptions | false;
  /** Body bytes on the wire. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Body bytes after decompression. Default 64 MiB. */
  maxDecompressedBytes?: number;
  /** Bytes of all bodies being read at once; past it, 503. Default 256 MiB. */
  maxInflightBytes?: number;
  /** Metric points queued in a sender before requests are refused with 503. Default 200,000. */
  maxQueuedPoints?: number;
  /** Retry-After (seconds) when the queues are full. Default 5. */
  retryAfterSeconds?: number;
  /** How long records of a run whose start was not seen (and MLflow does not know) are refused before they are taken as they are. Default 30,000 ms. */
  orphanGraceMillis?: number;
  /** Look runs up in these as well as in the MLflow target (tests, other stores). */
  runFinders?: RunFinder[];
  /**
   * How long a run's end waits for its last records before it is forwarded (a Collector's trace and
   * log pipelines deliver independently). Later records are still forwarded. Default 2,000 ms.
   */
  finishSettleMillis?: number;
  /** Runs the translator remembers for de-duplication. Default 1,000. */
  maxRuns?: number;
  /** Metric points per run the translator remembers for de-duplication. Default 100,000 (MLflow also drops exact duplicates itself). */
  maxSeenPointsPerRun?: number;
  /** Metric points remembered for de-duplication in all (about 70 bytes each); past it the least recently active runs forget theirs. Default 1,000,000. */
  maxSeenPoints?: number;
  /** Sender failures (default: one line on stderr per kind). */
  onError?: BackendErrorHandler;
  /** Where the bridge's own lines go (default: stderr). Never given tokens or headers. */
  log?: (line: string) => void;
}

export interface BridgeStats {
  /** Responses by HTTP status. */
  responses: Record<string, number>;
  /** Requests taken (200), by body encoding and compression: `protobuf`, `json+gzip`, … */
  accepted: Record<string, number>;
  logRecords: number;
  spans: number;
  /** Data points received on /v1/metrics (accepted and ignored: runtel's points travel as log records). */
  ignoredMetricDataPoints: number;
  /** `ml.*` log records the translator rejected (reported as partial success). */
  rejectedLogRecords: number;
  /** Run events forwarded (to each target). */
  events: number;
  /** Artifacts recorded as `runtel.artifact.<name>` tags (their files stay where they were logged). */
  artifacts: number;
  /** Requests answered 503 because a run's identity was not known yet. */
  heldForIdentity: number;
  /** Metric points queued in the senders (the largest of them). */
  queuedPoints: number;
  /** MLflow look-ups that failed. */
  lookupFailures: number;
  /** Metric points remembered for de-duplication (bounded by maxSeenPoints). */
  rememberedPoints: number;
  /** Param and tag keys dropped for breaking the key rule (MLflow's; their records were kept). */
  droppedKeys: number;
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

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface QueueStats {
  stats?(): { queuedPoints: number };
}

/**
 * The senders' own queue bound: well above the bridge's, so a request taken just under the bridge's
 * bound (up to maxDecompressedBytes of points) never makes a sender drop points.
 */
function senderQueueLimit(maxQueuedPoints: number): number {
  return Math.max(1_000_000, 5 * maxQueuedPoints);
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

/** The targets named by the environment (MLFLOW_TRACKING_URI, WANDB_API_KEY), as the library reads them. */
export function bridgeBackendsFromEnv(options: Pick<BridgeOptions, 'mlflow' | 'wandb' | 'maxQueuedPoints'> = {}): RunBackend[] {
  const backends: RunBackend[] = [];
  const hardLimit = senderQueueLimit(options.maxQueuedPoints ?? DEFAULT_MAX_QUEUED_POINTS);
  if (options.mlflow !== false && (options.mlflow !== undefined || getStringFromEnv('MLFLOW_TRACKING_URI') !== undefined)) {
    backends.push(new MlflowBackend({ maxQueuedPoints: hardLimit, ...(options.mlflow ?? {}), findExistingRuns: true }));
  }
  if (options.wandb !== false && (options.wandb !== undefined || getStringFromEnv('WANDB_API_KEY') !== undefined)) {
    const wandb = new WandbBackend({ maxQueuedPoints: hardLimit, ...(options.wandb ?? {}), findExistingRuns: true });
    if (wandb.mode === 'online') backends.push(wandb);
  }
  return backends;
}

/**
 * The bridge. The constructor checks the configuration and builds the senders; `listen()` starts
 * serving; `close()` stops taking requests and delivers what was taken. `createBridge()` constructs
 * and listens.
 */
export class RuntelBridge {
  readonly host: string;
  private _port: number;
  readonly targets: string[];
  private readonly _server: Server;
  private readonly _codec = new OtlpCodec();
  private readonly _translator: OtelRunTranslator;
  private readonly _sinks: OtelRunSink[];
  private readonly _settler: FinishSettler;
  private readonly _directory: RunDirectory;
  private readonly _budget: ByteBudget;
  private readonly _tokenDigest: Buffer | undefined;
  private readonly _o: {
    maxBodyBytes: number;
    maxDecompressedBytes: number;
    maxQueuedPoints: number;
    retryAfterSeconds: number;
  };
  private readonly _log: (line: string) => void;
  private readonly _stats: Omit<BridgeStats, 'queuedPoints' | 'lookupFailures' | 'rememberedPoints' | 'droppedKeys'> = {
    responses: {},
    accepted: {},
    logRecords: 0,
    spans: 0,
    ignoredMetricDataPoints: 0,
    rejectedLogRecords: 0,
    events: 0,
    artifacts: 0,
    heldForIdentity: 0,
  };
  private _closing: Promise<void> | undefined;
  private _listening = false;

  constructor(options: BridgeOptions = {}) {
    this.host = options.host ?? getStringFromEnv('RUNTEL_BRIDGE_HOST') ?? DEFAULT_BRIDGE_HOST;
    const port = options.port ?? getNumberFromEnv('RUNTEL_BRIDGE_PORT') ?? DEFAULT_BRIDGE_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bridge port must be an integer 0–65535, got ${port}`);
    this._port = port;
    const token = options.token ?? getStringFromEnv('RUNTEL_BRIDGE_TOKEN');
    const allowInsecure = options.allowInsecure ?? getBooleanFromEnv('RUNTEL_BRIDGE_ALLOW_INSECURE') ?? false;
    if (token === undefined && !allowInsecure && !isLoopbackHost(this.host)) {
      throw new Error(
        `refusing to listen on ${this.host} without a token: anyone who can reach it could write runs. ` +
          'Set RUNTEL_BRIDGE_TOKEN (clients send Authorization: Bearer <token>), or pass --allow-insecure (RUNTEL_BRIDGE_ALLOW_INSECURE=true) behind a trusted network.',
      );
    }
    this._tokenDigest = token === undefined ? undefined : digest(token);
    this._o = {
      maxBodyBytes: positive(options.maxBodyBytes ?? 16 << 20, 'maxBodyBytes'),
      maxDecompressedBytes: positive(options.maxDecompressedBytes ?? 64 << 20, 'maxDecompressedBytes'),
      maxQueuedPoints: positive(options.maxQueuedPoints ?? DEFAULT_MAX_QUEUED_POINTS, 'maxQueuedPoints'),
      retryAfterSeconds: positive(options.retryAfterSeconds ?? 5, 'retryAfterSeconds'),
    };
    this._budget = new ByteBudget(positive(options.maxInflightBytes ?? 256 << 20, 'maxInflightBytes'));
    this._log = options.log ?? ((line) => process.stderr.write(`${line}\n`));

    const backends = options.backends ?? bridgeBackendsFromEnv(options);
    if (backends.length === 0) {
      throw new Error('the bridge needs somewhere to send runs: set MLFLOW_TRACKING_URI (MLflow) and/or WANDB_API_KEY (W&B, online mode)');
    }
    this._sinks = backends.map((backend) => {
      const sink = new OtelRunSink(backend, options.onError);
      sink.acquire();
      return sink;
    });
    this.targets = backends.map(describeBackend);
    this._settler = new FinishSettler(options.finishSettleMillis ?? 2_000, (events) => {
      for (const sink of this._sinks) sink.deliver(events);
    });
    const maxRuns = options.maxRuns ?? 1_000;
    this._translator = new OtelRunTranslator({ maxRuns, maxSeenPointsPerRun: options.maxSeenPointsPerRun ?? 100_000, maxSeenPoints: options.maxSeenPoints ?? 1_000_000 });
    const finders = [...(options.runFinders ?? [])];
    for (const backend of backends) if (backend instanceof MlflowBackend) finders.push(mlflowRunFinder(backend.client));
    this._directory = new RunDirectory({ finders, orphanGraceMillis: options.orphanGraceMillis ?? 30_000, maxRuns: Math.max(10 * maxRuns, 10_000) });

    this._server = createServer((req, res) => {
      this._handle(req, res).catch((error: unknown) => {
        // Not expected: every known failure is an HttpError. Answer, and keep serving.
        this._log(`runtel bridge: internal error: ${error instanceof Error ? error.message : String(error)}`);
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

  /** `http://host:port`, once listening. */
  get url(): string {
    const host = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    return `http://${host}:${this._port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this._server.once('error', reject);
      this._server.listen(this._port, this.host, () => {
        this._server.off('error', reject);
        this._port = (this._server.address() as AddressInfo).port;
        this._listening = true;
        resolve();
      });
    });
  }

  stats(): BridgeStats {
    return { ...this._stats, responses: { ...this._stats.responses }, accepted: { ...this._stats.accepted }, queuedPoints: this._queuedPoints(), lookupFailures: this._directory.lookupFailures, rememberedPoints: this._translator.seenPoints, droppedKeys: this._translator.stats().droppedKeys };
  }

  /** The backends' failure counts, by `backend:operation`. */
  failureCounts(): Record<string, number> {
    return Object.assign({}, ...this._sinks.map((s) => s.failures.counts())) as Record<string, number>;
  }

  /** Stops taking requests (in-flight ones finish), then delivers everything queued and shuts the senders down. */
  close(): Promise<void> {
    this._closing ??= (async () => {
      if (this._listening) {
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
      }
      this._settler.flush();
      await Promise.all(this._sinks.map((s) => s.release()));
    })();
    return this._closing;
  }

  /** Delivers everything queued so far. */
  async flush(): Promise<void> {
    this._settler.flush();
    await Promise.all(this._sinks.map((s) => s.backend.forceFlush()));
  }

  // --- HTTP ---

  private async _handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/healthz' || path === '/readyz') return this._health(req, res, path);
    const signal = PATHS.get(path);
    const encoding = MEDIA_TYPES.get(mediaType(req.headers['content-type']));
    try {
      if (signal === undefined) throw new HttpError(404, `no such endpoint: ${path.slice(0, 100)}`);
      if (req.method !== 'POST') throw new HttpError(405, 'OTLP/HTTP takes POST', { allow: 'POST' });
      if (!this._authorized(req)) throw new HttpError(401, 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
      if (encoding === undefined) throw new HttpError(415, 'content type must be application/x-protobuf or application/json');
      const decompressor = decompressorFor(req.headers['content-encoding']);
      if (decompressor === undefined) throw new HttpError(415, 'content encoding must be gzip, deflate or identity');
      if (this._closing !== undefined) throw new HttpError(503, 'the bridge is shutting down', { 'retry-after': '5' });
      const queued = this._queuedPoints();
      if (queued >= this._o.maxQueuedPoints) throw this._busy(`${queued} metric points are waiting for the targets`);
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > this._o.maxBodyBytes) throw new HttpError(413, `body is larger than ${this._o.maxBodyBytes} bytes`);

      let body: { body: Buffer; held: number };
      try {
        body = await readBody(req, this._o, this._budget, decompressor);
      } catch (error) {
        if (error instanceof BodyError) throw new HttpError(error.status, error.message, error.status === 503 ? { 'retry-after': '1' } : {});
        throw error;
      }
      let request: Record<string, unknown>;
      try {
        request = this._codec.decode(signal, encoding, body.body);
      } catch (error) {
        if (error instanceof OtlpDecodeError) throw new HttpError(400, error.message);
        throw error;
      } finally {
        this._budget.give(body.held);
      }
      const result = await this._export(signal, request);
      const how = `${encoding}${decompressor === null ? '' : `+${String(req.headers['content-encoding']).trim().toLowerCase()}`}`;
      this._stats.accepted[how] = (this._stats.accepted[how] ?? 0) + 1;
      this._respond(res, 200, encoding, this._codec.encodeResponse(signal, encoding, result.rejected, result.message));
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
    const queued = this._queuedPoints();
    const ready = this._listening && this._closing === undefined && queued < this._o.maxQueuedPoints;
    const body = JSON.stringify({ status: ready ? 'ready' : this._closing !== undefined ? 'closing' : 'busy', targets: this.targets.length, otlpSchema: OTLP_SCHEMA_VERSION });
    this._respond(res, ready ? 200 : 503, 'json', Buffer.from(body), ready ? {} : { 'retry-after': String(this._o.retryAfterSeconds) });
  }

  private _authorized(req: IncomingMessage): boolean {
    if (this._tokenDigest === undefined) return true;
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    // Compared as digests: constant time, whatever the length.
    return match !== null && timingSafeEqual(digest(match[1]!), this._tokenDigest);
  }

  private _busy(why: string): HttpError {
    return new HttpError(503, `the bridge is busy (${why}); retry later`, { 'retry-after': String(this._o.retryAfterSeconds) });
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

  // --- OTLP → runs ---

  private async _export(signal: OtlpSignal, request: Record<string, unknown>): Promise<{ rejected: number; message: string }> {
    if (signal === 'metrics') {
      this._stats.ignoredMetricDataPoints += countDataPoints(request);
      return { rejected: 0, message: '' };
    }
    const logs = signal === 'logs' ? logInputsFromOtlp(request) : [];
    const spans = signal === 'traces' ? spanInputsFromOtlp(request) : [];
    // From here to the translation nothing is changed until the request is known to be taken.
    await this._identify(logs, spans);
    this._stats.logRecords += logs.length;
    this._stats.spans += spans.length;

    let events: RunEvent[];
    let rejected = 0;
    if (signal === 'logs') {
      const before = this._translator.stats().rejected;
      events = this._recordArtifacts(this._translator.logs(startsFirst(logs)), logs);
      rejected = this._translator.stats().rejected - before;
    } else {
      events = this._translator.spans(spans);
    }
    const now = this._settler.take(events);
    for (const sink of this._sinks) sink.deliver(now);
    this._stats.events += events.length;
    this._stats.rejectedLogRecords += rejected;
    return rejected > 0 ? { rejected, message: `${rejected} ml.* log record(s) lacked ml.run.id or had an invalid metric key or value, or run status` } : { rejected: 0, message: '' };
  }

  /**
   * Makes sure every run these records touch has its identity on the record that may create it
   * (see RunDirectory). Throws 503 when a run's start has not been seen yet or the senders cannot
   * take the request's points, and changes nothing then.
   */
  private async _identify(logs: OtelLogInput[], spans: OtelSpanInput[]): Promise<void> {
    // Identities this request brings. They are learnt only if the request is taken: a request
    // answered 503 comes again whole, and its start record must then still create the run.
    const brought = new Map<string, RunIdentity>();
    const needed = new Set<string>();
    let points = 0;
    for (const span of spans) {
      const runId = stringAttr(span.attributes, ATTR_RUN_ID);
      if (runId !== undefined) brought.set(runId, { ...identityOf(span.attributes), ...brought.get(runId) });
    }
    for (const record of logs) {
      const eventName = eventNameOf(record);
      if (eventName === undefined || !eventName.startsWith('ml.')) continue;
      const runId = stringAttr(record.attributes, ATTR_RUN_ID);
      if (runId === undefined) continue;
      if (eventName === EVENT_METRIC) points++;
      if (eventName === EVENT_RUN_START) brought.set(runId, { ...brought.get(runId), ...identityOf(record.attributes) });
      else needed.add(runId);
    }
    for (const runId of brought.keys()) needed.delete(runId);
    const queued = this._queuedPoints();
    const limit = senderQueueLimit(this._o.maxQueuedPoints);
    if (points > limit) throw new HttpError(413, `${points} metric points in one request; at most ${limit}`);
    if (points > 0 && queued + points > limit) throw this._busy(`${queued} metric points are waiting for the targets`);
    const resolutions = needed.size === 0 ? new Map<string, Resolution>() : await this._directory.resolve(needed);
    const waiting = [...resolutions.values()].filter((r) => r.kind === 'wait').length;
    if (waiting > 0) {
      this._stats.heldForIdentity++;
      throw new HttpError(503, `${waiting} run(s) whose ml.run.start has not arrived yet; retry later`, { 'retry-after': '1' });
    }
    for (const [runId, identity] of brought) this._directory.learn(runId, identity);
    for (const [runId, resolution] of resolutions) if (resolution.kind === 'orphan') this._directory.accepted(runId);
    if (needed.size === 0) return;
    for (const record of logs) {
      const runId = stringAttr(record.attributes, ATTR_RUN_ID);
      const identity = runId === undefined || !needed.has(runId) ? undefined : this._directory.identity(runId);
      if (identity !== undefined) withIdentity(record.attributes, identity);
    }
  }

  /**
   * The bridge cannot read the emitter's files, and must never read its own on a client's say-so:
   * an artifact becomes a tag `runtel.artifact.<name>` with its kind, size, hash and source path.
   */
  private _recordArtifacts(events: RunEvent[], logs: OtelLogInput[]): RunEvent[] {
    if (!events.some((e) => e.type === 'artifact')) return events;
    const details = new Map<string, Record<string, unknown>>();
    for (const record of logs) {
      const a = record.attributes;
      if ((record.eventName ?? a[ATTR_EVENT_NAME]) !== EVENT_ARTIFACT) continue;
      details.set(`${String(a[ATTR_RUN_ID])}\0${String(a[ATTR_ARTIFACT_NAME])}\0${record.timeMillis}`, a);
    }
    return events.map((event) => {
      if (event.type !== 'artifact') return event;
      this._stats.artifacts++;
      const a = details.get(`${event.runId}\0${event.name}\0${event.time}`) ?? {};
      const value: Record<string, unknown> = { kind: event.kind, size: event.size };
      if (typeof a[ATTR_ARTIFACT_SHA256] === 'string') value.sha256 = a[ATTR_ARTIFACT_SHA256];
      if (typeof a[ATTR_ARTIFACT_ERROR] === 'string') value.error = a[ATTR_ARTIFACT_ERROR];
      value.source = typeof a[ATTR_ARTIFACT_PATH] === 'string' ? a[ATTR_ARTIFACT_PATH] : event.path;
      return { type: 'tags', runId: event.runId, time: event.time, tags: { [artifactTagKey(event.name)]: JSON.stringify(value) } };
    });
  }

  private _queuedPoints(): number {
    let max = 0;
    for (const sink of this._sinks) {
      const stats = (sink.backend as QueueStats).stats?.();
      if (stats !== undefined && stats.queuedPoints > max) max = stats.queuedPoints;
    }
    return max;
  }
}

/** Creates the bridge and starts listening. */
export async function createBridge(options: BridgeOptions = {}): Promise<RuntelBridge> {
  const bridge = new RuntelBridge(options);
  try {
    await bridge.listen();
  } catch (error) {
    await bridge.close();
    throw error;
  }
  return bridge;
}

/** `runtel.artifact.<name>`, with the name made safe for MLflow tag keys (letters, digits, `_-. /`, no `.`/`..` segments, ≤ 250). */
export function artifactTagKey(name: string): string {
  const segments = name
    .replace(/[^A-Za-z0-9_\-./ ]/g, '_')
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..');
  return `${ARTIFACT_TAG_PREFIX}${segments.join('/') || '_'}`.slice(0, 250).replace(/[/.]+$/, '');
}

function eventNameOf(record: OtelLogInput): string | undefined {
  return record.eventName ?? stringAttr(record.attributes, ATTR_EVENT_NAME);
}

/**
 * The records in order, except that a run's `ml.run.start` that comes after other records of the
 * same run in this request moves just before the first of them: the translator creates a run from
 * whichever record comes first, and a start that came later would lose its params and tags.
 */
function startsFirst(logs: OtelLogInput[]): OtelLogInput[] {
  const firstStart = new Map<string, number>();
  logs.forEach((record, i) => {
    if (eventNameOf(record) !== EVENT_RUN_START) return;
    const runId = stringAttr(record.attributes, ATTR_RUN_ID);
    if (runId !== undefined && !firstStart.has(runId)) firstStart.set(runId, i);
  });
  if (firstStart.size === 0) return logs;
  const out: OtelLogInput[] = [];
  const moved = new Set<number>();
  const seen = new Set<string>();
  logs.forEach((record, i) => {
    if (moved.has(i)) return;
    const runId = stringAttr(record.attributes, ATTR_RUN_ID);
    const eventName = eventNameOf(record);
    if (runId !== undefined && eventName?.startsWith('ml.') === true && !seen.has(runId)) {
      seen.add(runId);
      const start = firstStart.get(runId);
      if (start !== undefined && start > i) {
        out.push(logs[start]!);
        moved.add(start);
      }
    }
    out.push(record);
  });
  return out;
}

function identityOf(attributes: Record<string, unknown>): RunIdentity {
  const identity: RunIdentity = {};
  const name = stringAttr(attributes, ATTR_RUN_NAME);
  const experiment = stringAttr(attributes, ATTR_EXPERIMENT_NAME);
  const parentId = stringAttr(attributes, ATTR_RUN_PARENT_ID);
  if (name !== undefined) identity.name = name;
  if (experiment !== undefined) identity.experiment = experiment;
  if (parentId !== undefined) identity.parentId = parentId;
  return identity;
}

/** Puts a run's identity on a record that lacks it, for the translator in case this record starts the run. */
function withIdentity(attributes: Record<string, unknown>, identity: RunIdentity): void {
  if (identity.name !== undefined && attributes[ATTR_RUN_NAME] === undefined) attributes[ATTR_RUN_NAME] = identity.name;
  if (identity.experiment !== undefined && attributes[ATTR_EXPERIMENT_NAME] === undefined) attributes[ATTR_EXPERIMENT_NAME] = identity.experiment;
  if (identity.parentId !== undefined && attributes[ATTR_RUN_PARENT_ID] === undefined) attributes[ATTR_RUN_PARENT_ID] = identity.parentId;
}

function stringAttr(attributes: Record<string, unknown>, key: string): string | undefined {
  const value = attributes[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function positive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number`);
  return value;
}

function describeBackend(backend: RunBackend): string {
  if (backend instanceof MlflowBackend) return `mlflow ${redactUrl(backend.client.trackingUri)}`;
  if (backend instanceof WandbBackend) return 'wandb';
  return backend.name;
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
