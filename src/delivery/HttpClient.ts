// The one HTTP client every remote target uses: undici for requests, p-retry for exponential
// backoff with jitter (Retry-After is a floor on the wait), error bodies read into the target's
// error class, credentials kept out of every message.
//
// Nothing it holds keeps the process alive unless asked (`keepProcessAlive`): backoff timers are
// unref'd and so are its sockets, so a program whose target is down exits once its own work (and
// runtel's bounded flush) is done. `close()` cuts off whatever is still in flight.

import { createReadStream, readFileSync, statSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import type { Readable } from 'node:stream';
import pRetry, { AbortError } from 'p-retry';
import { Agent, buildConnector, request } from 'undici';
import type { Dispatcher } from 'undici';
import { getNumberFromEnv } from '../core/env.js';
import { ABORTED, TargetError } from './TargetError.js';
import type { TargetErrorInit } from './TargetError.js';

export interface HttpRetryOptions {
  /** How long a request is retried before it is given up. Default: env `RUNTEL_RETRY_TIMEOUT_MILLIS`, else the target's default. */
  retryTimeoutMillis?: number;
  /** First backoff wait. Default: the target's. */
  retryMinDelayMillis?: number;
  /** Longest backoff wait. Default: the target's. */
  retryMaxDelayMillis?: number;
  /** Per attempt (headers and body). Default: the target's. */
  requestTimeoutMillis?: number;
  /**
   * Keep the process alive while requests and their retries are pending. Default false: a program
   * that ends while the target is down exits, and the local run log keeps what was not delivered.
   * `runtel sync` and the bridge keep it alive.
   */
  keepProcessAlive?: boolean;
}

export interface HttpClientOptions extends HttpRetryOptions {
  /** The target's display name for messages: `MLflow`, `W&B`. */
  target: string;
  /** Defaults for the retry options the caller left unset. */
  defaults: Required<Pick<HttpRetryOptions, 'retryTimeoutMillis' | 'retryMinDelayMillis' | 'retryMaxDelayMillis' | 'requestTimeoutMillis'>>;
  /** The Authorization header sent with `auth: true` requests. */
  authorization?: string | undefined;
  /** Strings never to show in a message (API keys); the authorization header is always hidden. */
  secrets?: string[];
  /** Skip TLS verification. */
  insecureTls?: boolean;
  /** A CA bundle (path) for the server's certificate. */
  serverCertPath?: string | undefined;
  /** Builds the target's error class. */
  errorFor?: (init: TargetErrorInit) => TargetError;
  /** Spreads the connections over a pre-fork server's workers (see spacedConnector). Default: neither. */
  spreadConnections?: {
    /** New connections at least this far apart. */
    connectSpacingMillis: number;
    /** A connection older than this is closed once its requests are done; the next opens another. Default: kept. */
    maxConnectionAgeMillis?: number;
  };
}

export interface HttpRequest {
  method: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: string | Readable;
  /** Send the Authorization header. Default true. */
  auth?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const RETRY_AFTER_CAP_MILLIS = 60_000;

export class HttpClient {
  readonly target: string;
  readonly retryTimeoutMillis: number;
  private readonly _authorization: string | undefined;
  private readonly _secrets: string[];
  private readonly _agent: Agent;
  private readonly _abort = new AbortController();
  private readonly _minDelay: number;
  private readonly _maxDelay: number;
  private readonly _requestTimeoutMillis: number;
  private readonly _keepAlive: boolean;
  private readonly _errorFor: (init: TargetErrorInit) => TargetError;
  private readonly _retryListeners: Array<(error: TargetError, attempt: number) => void> = [];

  constructor(options: HttpClientOptions) {
    this.target = options.target;
    this.retryTimeoutMillis = positive(options.retryTimeoutMillis ?? getNumberFromEnv('RUNTEL_RETRY_TIMEOUT_MILLIS') ?? options.defaults.retryTimeoutMillis, 'retryTimeoutMillis (RUNTEL_RETRY_TIMEOUT_MILLIS)');
    this._minDelay = positive(options.retryMinDelayMillis ?? options.defaults.retryMinDelayMillis, 'retryMinDelayMillis');
    this._maxDelay = Math.max(this._minDelay, positive(options.retryMaxDelayMillis ?? options.defaults.retryMaxDelayMillis, 'retryMaxDelayMillis'));
    this._requestTimeoutMillis = positive(options.requestTimeoutMillis ?? options.defaults.requestTimeoutMillis, 'requestTimeoutMillis');
    this._keepAlive = options.keepProcessAlive ?? false;
    this._authorization = options.authorization;
    this._secrets = (options.secrets ?? []).filter((s) => s !== '');
    if (this._authorization !== undefined) this._secrets.push(this._authorization, this._authorization.replace(/^\S+\s+/, ''));
    this._errorFor = options.errorFor ?? ((init) => new TargetError(init));
    // Every request and backoff listens for close(): as many as there are requests in flight.
    setMaxListeners(0, this._abort.signal);
    const tls = options.insecureTls === true || options.serverCertPath !== undefined
      ? { rejectUnauthorized: options.insecureTls !== true, ...(options.serverCertPath !== undefined ? { ca: readFileSync(options.serverCertPath) } : {}) }
      : {};
    const spread = options.spreadConnections;
    const connect = spread === undefined ? buildConnector(tls) : spacedConnector(buildConnector(tls), spread.connectSpacingMillis, this._abort.signal, this._keepAlive);
    this._agent = new Agent({
      // By age, not by count: renewed every n requests, a fast server's requests would wait for new
      // connections (one per spacing), whatever its speed.
      ...(spread?.maxConnectionAgeMillis !== undefined ? { clientTtl: spread.maxConnectionAgeMillis } : {}),
      connect: this._keepAlive
        ? connect
        : (opts, callback) =>
            connect(opts, (error, socket) => {
              // undici refs a socket while a request is pending; a training process must still be
              // free to exit when only runtel's deliveries are left (they are in the local run log).
              if (socket) {
                socket.unref();
                socket.ref = () => socket;
              }
              (callback as (...args: unknown[]) => void)(error, socket);
            }),
    });
  }

  /** One attempt. Connection errors and timeouts become a status-0 error; the response is not checked. */
  async send(operation: string, url: string, req: HttpRequest): Promise<Dispatcher.ResponseData> {
    const headers = { 'user-agent': 'runtel', ...req.headers, ...(req.auth !== false && this._authorization !== undefined ? { authorization: this._authorization } : {}) };
    try {
      return await request(url, {
        method: req.method,
        headers,
        body: req.body,
        headersTimeout: this._requestTimeoutMillis,
        bodyTimeout: this._requestTimeoutMillis,
        dispatcher: this._agent,
        signal: this._abort.signal,
      });
    } catch (error) {
      const code = this._abort.signal.aborted ? ABORTED : ((error as { code?: string }).code ?? 'CONNECTION_ERROR');
      throw this._error(operation, 0, code, `${req.method} ${redactUrl(url)}: ${(error as Error).message}`);
    }
  }

  /** The body of a 2xx answer; any other status is the target's error, with the server's code and message. */
  async check(operation: string, res: Dispatcher.ResponseData): Promise<string> {
    const text = await res.body.text().catch(() => '');
    if (res.statusCode < 300) return text;
    const { code, message } = describeErrorBody(res.statusCode, text);
    throw this._error(operation, res.statusCode, code, message, parseRetryAfter(res.headers['retry-after']));
  }

  /** A request with retries; the answer's body as text. */
  async call(operation: string, url: string, req: HttpRequest): Promise<HttpResponse> {
    return this.retry(operation, async () => {
      const res = await this.send(operation, url, req);
      return { status: res.statusCode, headers: res.headers, text: await this.check(operation, res) };
    });
  }

  /** JSON in, JSON out, with retries. `beforeRetry` runs before each attempt after the first; a value it returns is the result. */
  async json<T>(operation: string, method: 'GET' | 'POST', url: string, body?: unknown, beforeRetry?: () => Promise<T | undefined>): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return this.retry(operation, async (attempt) => {
      if (attempt > 1 && beforeRetry !== undefined) {
        const found = await beforeRetry();
        if (found !== undefined) return found;
      }
      const res = await this.send(operation, url, { method, ...(payload !== undefined ? { headers: { 'content-type': 'application/json' }, body: payload } : {}) });
      const text = await this.check(operation, res);
      try {
        return (text === '' ? {} : JSON.parse(text)) as T;
      } catch {
        throw this._error(operation, res.statusCode, `HTTP_${res.statusCode}`, `the answer is not JSON: ${text.slice(0, 200)}`);
      }
    });
  }

  /** Streams a file (never read whole into memory) with retries. */
  async putFile(operation: string, url: string, file: string, options: { headers?: Record<string, string>; auth?: boolean } = {}): Promise<void> {
    await this.retry(operation, async () => {
      const size = statSync(file).size;
      const res = await this.send(operation, url, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', ...options.headers, 'content-length': String(size) },
        body: createReadStream(file),
        auth: options.auth ?? true,
      });
      await this.check(operation, res);
    });
  }

  /** Bytes of a GET, with retries. */
  async getBytes(operation: string, url: string): Promise<Buffer> {
    return this.retry(operation, async () => {
      const res = await this.send(operation, url, { method: 'GET' });
      if (res.statusCode >= 300) await this.check(operation, res);
      return Buffer.from(await res.body.arrayBuffer());
    });
  }

  /**
   * Runs `attempt` until it succeeds, fails permanently or the retry window closes. Only the
   * target's retryable errors are retried; anything else is thrown at once.
   */
  retry<T>(operation: string, attempt: (attemptNumber: number) => Promise<T>): Promise<T> {
    return pRetry(
      async (attemptNumber) => {
        try {
          return await attempt(attemptNumber);
        } catch (error) {
          if (!(error instanceof TargetError) || !error.retryable) throw new AbortError(error instanceof Error ? error : new Error(String(error)));
          throw error;
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        maxRetryTime: this.retryTimeoutMillis,
        factor: 2,
        minTimeout: this._minDelay,
        maxTimeout: this._maxDelay,
        randomize: true,
        unref: !this._keepAlive,
        signal: this._abort.signal,
        onFailedAttempt: async ({ error, attemptNumber }) => {
          if (!(error instanceof TargetError)) return;
          for (const listener of this._retryListeners) listener(error, attemptNumber);
          if (error.retryAfterMillis !== undefined && error.retryAfterMillis > 0) await this._sleep(Math.min(error.retryAfterMillis, RETRY_AFTER_CAP_MILLIS));
        },
      },
    ).catch((error: unknown) => {
      if (error instanceof TargetError) throw error;
      if (this._abort.signal.aborted) throw this._error(operation, 0, ABORTED, 'the client was closed');
      throw error;
    });
  }

  /** Told before each retry, with the error that caused it and the attempt that failed (1-based). */
  addRetryListener(listener: (error: TargetError, attempt: number) => void): void {
    this._retryListeners.push(listener);
  }

  /** The text with every credential replaced by `***`. */
  redact(text: string): string {
    let out = text;
    for (const secret of this._secrets) out = out.split(secret).join('***');
    return out;
  }

  /** Cuts off requests in flight and their retries, and closes the connections. Idempotent. */
  async close(): Promise<void> {
    if (this._abort.signal.aborted) return;
    this._abort.abort();
    await this._agent.destroy().catch(() => undefined);
  }

  private _error(operation: string, status: number, code: string, message: string, retryAfterMillis?: number): TargetError {
    return this._errorFor({ target: this.target, operation, status, code, message: this.redact(message), retryAfterMillis });
  }

  private _sleep(millis: number): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this._abort.signal.removeEventListener('abort', onAbort);
        resolve();
      }, millis);
      if (!this._keepAlive) timer.unref();
      this._abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * The code and message of an error answer: MLflow's `{error_code, message}`, GraphQL's `{errors}`,
 * or `{error}` / `{message}`; any other body (a proxy's HTML page, a plain-text 503) as text.
 */
export function describeErrorBody(status: number, text: string): { code: string; message: string } {
  let code = `HTTP_${status}`;
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { error_code?: unknown; message?: unknown; error?: unknown; errors?: Array<{ message?: unknown }> };
    if (typeof parsed.error_code === 'string') code = parsed.error_code;
    const fromErrors = Array.isArray(parsed.errors) ? parsed.errors.map((e) => e?.message).filter((m) => typeof m === 'string').join('; ') : '';
    const fromError = typeof parsed.error === 'string' ? parsed.error : typeof (parsed.error as { message?: unknown } | undefined)?.message === 'string' ? (parsed.error as { message: string }).message : undefined;
    const picked = typeof parsed.message === 'string' ? parsed.message : (fromError ?? (fromErrors !== '' ? fromErrors : undefined));
    if (picked !== undefined) message = picked.slice(0, 500);
  } catch {
    // Not JSON: keep the text.
  }
  return { code, message };
}

/** A `Retry-After` header (seconds or an HTTP date) in milliseconds, or undefined. */
export function parseRetryAfter(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A URL without userinfo or query, where credentials hide (signed upload URLs carry theirs in the query). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

function positive(value: number, name: string): number {
  if (!(value > 0) || Number.isNaN(value)) throw new RangeError(`${name} must be greater than 0, got ${value}`);
  return value;
}

/**
 * A connector that opens connections at least `spacingMillis` apart, in the order asked for. A
 * pre-fork server (uvicorn or gunicorn workers sharing one listening socket, as `mlflow server
 * --workers N` runs) gives each new connection to whichever worker accepts first: opened together,
 * most land on one worker, while one opened when the others' workers are busy goes to an idle one.
 */
export function spacedConnector(connect: buildConnector.connector, spacingMillis: number, signal: AbortSignal, keepProcessAlive: boolean): buildConnector.connector {
  const waiting: Array<() => void> = [];
  let lastOpenedAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  // Each turn is timed from when the last connection really opened: turns set when asked for would
  // all come due together after the event loop was busy, and open at once.
  const openDue = (): void => {
    timer = undefined;
    while (waiting.length > 0) {
      const wait = lastOpenedAt + spacingMillis - performance.now();
      if (wait > 0) {
        timer = setTimeout(openDue, wait);
        if (!keepProcessAlive) timer.unref();
        return;
      }
      lastOpenedAt = performance.now();
      waiting.shift()!();
    }
  };
  return (options, callback) => {
    waiting.push(() => (signal.aborted ? callback(new Error('the client was closed'), null) : connect(options, callback)));
    if (timer === undefined) openDue();
  };
}
