// A small typed client for MLflow's tracking REST API (`/api/2.0/mlflow/...`) and its artifact
// proxy. Retries 429, 5xx and connection errors with exponential backoff and jitter (p-retry),
// honouring Retry-After; other 4xx are permanent. Credentials never appear in errors.

import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import pRetry, { AbortError } from 'p-retry';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { getBooleanFromEnv, getStringFromEnv } from '../core/env.js';
import { parseRetryAfter, redactUrl } from '../core/http.js';

export type MlflowRunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

export interface MlflowMetric {
  key: string;
  /** A number, or "NaN" / "Infinity" / "-Infinity" as MLflow's JSON wants them. */
  value: number | string;
  timestamp: number;
  step: number;
}

export interface MlflowKeyValue {
  key: string;
  value: string;
}

export interface MlflowRunInfo {
  run_id: string;
  experiment_id: string;
  run_name?: string;
  status: MlflowRunStatus;
  start_time?: number;
  end_time?: number;
  artifact_uri?: string;
  lifecycle_stage?: string;
}

export interface MlflowRun {
  info: MlflowRunInfo;
  data: { metrics?: MlflowMetric[]; params?: MlflowKeyValue[]; tags?: MlflowKeyValue[] };
}

export interface MlflowClientOptions {
  /** Default: env `MLFLOW_TRACKING_URI`. */
  trackingUri?: string;
  /** Default: env `MLFLOW_TRACKING_USERNAME`. With a password, Basic auth (wins over a token). */
  username?: string;
  /** Default: env `MLFLOW_TRACKING_PASSWORD`. */
  password?: string;
  /** Default: env `MLFLOW_TRACKING_TOKEN`. Bearer auth. */
  token?: string;
  /** Skip TLS verification. Default: env `MLFLOW_TRACKING_INSECURE_TLS`, else false. */
  insecureTls?: boolean;
  /** CA bundle for the server's certificate. Default: env `MLFLOW_TRACKING_SERVER_CERT_PATH`. */
  serverCertPath?: string;
  /** How long a request is retried before it is given up. Default 600000 (10 minutes). */
  retryTimeoutMillis?: number;
  /** Per attempt. Default 30000. */
  requestTimeoutMillis?: number;
  /** Longest wait between two attempts (backoff doubles from 250 ms with jitter). Default 10000, so delivery resumes soon after an outage ends. */
  retryMaxDelayMillis?: number;
  /** Called before each retry (for counting). */
  onRetry?: (error: MlflowError) => void;
}

/** SQLAlchemy's pool timeout, as MLflow passes it on: "QueuePool limit of size 5 overflow 10 reached, connection timed out". */
const POOL_EXHAUSTED = /QueuePool limit of size \d+ overflow \d+ reached/;

/** A failed MLflow call: HTTP status (0 for a connection error), MLflow's error_code and message. */
export class MlflowError extends Error {
  readonly status: number;
  readonly errorCode: string;
  readonly retryAfterMillis: number | undefined;

  constructor(status: number, errorCode: string, message: string, retryAfterMillis?: number) {
    super(`MLflow ${status === 0 ? 'unreachable' : `HTTP ${status}`} ${errorCode}: ${message}`);
    this.name = 'MlflowError';
    this.status = status;
    this.errorCode = errorCode;
    this.retryAfterMillis = retryAfterMillis;
  }

  /**
   * 429, 5xx and connection errors are worth retrying; other 4xx are permanent, except one: MLflow's
   * SQL store answers 400 BAD_REQUEST when its database connection pool is exhausted (SQLAlchemy's
   * TimeoutError is not an OperationalError, which it would map to 503), an overload that passes.
   */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500 || (this.status === 400 && POOL_EXHAUSTED.test(this.message));
  }
}

export class MlflowClient {
  readonly trackingUri: string;
  private readonly _authorization: string | undefined;
  private readonly _dispatcher: Dispatcher | undefined;
  private readonly _retryTimeoutMillis: number;
  private readonly _requestTimeoutMillis: number;
  private readonly _retryMaxDelayMillis: number;
  private readonly _onRetry: ((error: MlflowError) => void) | undefined;

  constructor(options: MlflowClientOptions = {}) {
    const uri = options.trackingUri ?? getStringFromEnv('MLFLOW_TRACKING_URI');
    if (uri === undefined) throw new Error('MLflow tracking URI missing: pass trackingUri or set MLFLOW_TRACKING_URI');
    if (!/^https?:\/\//.test(uri)) throw new Error(`MLflow tracking URI must be http(s)://…, got ${JSON.stringify(redactUrl(uri))}`);
    this.trackingUri = uri.replace(/\/+$/, '');
    const username = options.username ?? getStringFromEnv('MLFLOW_TRACKING_USERNAME');
    const password = options.password ?? getStringFromEnv('MLFLOW_TRACKING_PASSWORD');
    const token = options.token ?? getStringFromEnv('MLFLOW_TRACKING_TOKEN');
    if (username !== undefined && password !== undefined) {
      this._authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    } else if (token !== undefined) {
      this._authorization = `Bearer ${token}`;
    }
    const insecure = options.insecureTls ?? getBooleanFromEnv('MLFLOW_TRACKING_INSECURE_TLS') ?? false;
    const certPath = options.serverCertPath ?? getStringFromEnv('MLFLOW_TRACKING_SERVER_CERT_PATH');
    if (insecure || certPath !== undefined) {
      this._dispatcher = new Agent({ connect: { rejectUnauthorized: !insecure, ...(certPath !== undefined ? { ca: readFileSync(certPath) } : {}) } });
    }
    this._retryTimeoutMillis = options.retryTimeoutMillis ?? 600_000;
    this._requestTimeoutMillis = options.requestTimeoutMillis ?? 30_000;
    this._retryMaxDelayMillis = options.retryMaxDelayMillis ?? 10_000;
    this._onRetry = options.onRetry;
  }

  // --- experiments ---

  async getExperimentIdByName(name: string): Promise<string | undefined> {
    try {
      const res = await this._call<{ experiment: { experiment_id: string } }>('GET', `experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`);
      return res.experiment.experiment_id;
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw error;
    }
  }

  /** Race-safe: a concurrent create answers RESOURCE_ALREADY_EXISTS (HTTP 400), then we look it up again. */
  async getOrCreateExperiment(name: string): Promise<string> {
    const existing = await this.getExperimentIdByName(name);
    if (existing !== undefined) return existing;
    try {
      const res = await this._call<{ experiment_id: string }>('POST', 'experiments/create', { name });
      return res.experiment_id;
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_ALREADY_EXISTS') {
        const id = await this.getExperimentIdByName(name);
        if (id !== undefined) return id;
      }
      throw error;
    }
  }

  /** Every active experiment: id → name (all pages). */
  async searchExperiments(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let pageToken: string | undefined;
    do {
      const page = await this._call<{ experiments?: Array<{ experiment_id: string; name: string }>; next_page_token?: string }>('POST', 'experiments/search', {
        max_results: 1000,
        view_type: 'ACTIVE_ONLY',
        ...(pageToken !== undefined ? { page_token: pageToken } : {}),
      });
      for (const e of page.experiments ?? []) out.set(e.experiment_id, e.name);
      pageToken = page.next_page_token;
    } while (pageToken);
    return out;
  }

  async getExperimentName(experimentId: string): Promise<string> {
    const res = await this._call<{ experiment: { name: string } }>('GET', `experiments/get?experiment_id=${encodeURIComponent(experimentId)}`);
    return res.experiment.name;
  }

  // --- runs ---

  /**
   * Creating a run is not idempotent: when an attempt's answer is lost (a timeout, a reset), the run
   * may exist anyway. Before each retry `findCreated` (if given) looks for it, and a run it finds is
   * returned instead of creating a second one.
   */
  async createRun(
    body: { experiment_id: string; run_name: string; start_time: number; tags: MlflowKeyValue[] },
    options: { findCreated?: () => Promise<MlflowRunInfo | undefined> } = {},
  ): Promise<MlflowRunInfo> {
    const res = await this._call<{ run: MlflowRun }>('POST', 'runs/create', body, options.findCreated && (async () => {
      const info = await options.findCreated!();
      return info === undefined ? undefined : { run: { info, data: {} } };
    }));
    return res.run.info;
  }

  async getRun(runId: string): Promise<MlflowRun> {
    const res = await this._call<{ run: MlflowRun }>('GET', `runs/get?run_id=${encodeURIComponent(runId)}`);
    return res.run;
  }

  /** Runs in `experimentIds` matching an MLflow search filter (all pages). */
  async searchRuns(experimentIds: string[], filter: string, runViewType: 'ACTIVE_ONLY' | 'ALL' = 'ACTIVE_ONLY'): Promise<MlflowRun[]> {
    const runs: MlflowRun[] = [];
    let pageToken: string | undefined;
    do {
      const res = await this._call<{ runs?: MlflowRun[]; next_page_token?: string }>('POST', 'runs/search', {
        experiment_ids: experimentIds,
        filter,
        run_view_type: runViewType,
        max_results: 1000,
        ...(pageToken !== undefined ? { page_token: pageToken } : {}),
      });
      runs.push(...(res.runs ?? []));
      pageToken = res.next_page_token;
    } while (pageToken);
    return runs;
  }

  async logBatch(body: { run_id: string; metrics?: MlflowMetric[]; params?: MlflowKeyValue[]; tags?: MlflowKeyValue[] }): Promise<void> {
    await this._call('POST', 'runs/log-batch', body);
  }

  async updateRun(body: { run_id: string; status: MlflowRunStatus; end_time?: number; run_name?: string }): Promise<void> {
    await this._call('POST', 'runs/update', body);
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this._call('POST', 'runs/set-tag', { run_id: runId, key, value });
  }

  /**
   * Every point of a metric. MLflow's SQL stores keep ±Infinity as ±1.7976931348623157e308 (the
   * largest double); those come back as ±Infinity here, NaN as NaN.
   */
  async getMetricHistory(runId: string, key: string): Promise<MlflowMetric[]> {
    const out: MlflowMetric[] = [];
    let pageToken: string | undefined;
    do {
      const query = `run_id=${encodeURIComponent(runId)}&metric_key=${encodeURIComponent(key)}&max_results=25000${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ''}`;
      const res = await this._call<{ metrics?: MlflowMetric[]; next_page_token?: string }>('GET', `metrics/get-history?${query}`);
      for (const m of res.metrics ?? []) out.push({ ...m, value: decodeStoredValue(m.value), timestamp: Number(m.timestamp), step: Number(m.step ?? 0) });
      pageToken = res.next_page_token;
    } while (pageToken);
    return out;
  }

  // --- artifacts (through the tracking server's proxy) ---

  /**
   * Streams a file to `mlflow-artifacts:/<path>` (the run's artifact_uri plus the artifact name).
   * The file is never read whole into memory.
   */
  async uploadArtifact(artifactPath: string, file: string): Promise<void> {
    const url = `${this.trackingUri}/api/2.0/mlflow-artifacts/artifacts/${artifactPath.split('/').map(encodeURIComponent).join('/')}`;
    await this._retry(async () => {
      const size = statSync(file).size;
      const res = await this._send(url, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: createReadStream(file),
      });
      await this._check(res);
      await res.body.dump();
    });
  }

  /** The bytes of an artifact (for tests and sync checks). */
  async downloadArtifact(artifactPath: string): Promise<Buffer> {
    const url = `${this.trackingUri}/api/2.0/mlflow-artifacts/artifacts/${artifactPath.split('/').map(encodeURIComponent).join('/')}`;
    return this._retry(async () => {
      const res = await this._send(url, { method: 'GET', headers: {} });
      await this._check(res);
      return Buffer.from(await res.body.arrayBuffer());
    });
  }

  async close(): Promise<void> {
    await this._dispatcher?.close();
  }

  // --- plumbing ---

  /** `beforeRetry`: before each attempt after the first; a value it returns is the result. */
  private _call<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown, beforeRetry?: () => Promise<T | undefined>): Promise<T> {
    const url = `${this.trackingUri}/api/2.0/mlflow/${path}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return this._retry(async (attempt) => {
      if (attempt > 1 && beforeRetry !== undefined) {
        const found = await beforeRetry();
        if (found !== undefined) return found;
      }
      const res = await this._send(url, {
        method,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        ...(payload !== undefined ? { body: payload } : {}),
      });
      await this._check(res);
      const text = await res.body.text();
      return (text === '' ? {} : JSON.parse(text)) as T;
    });
  }

  private async _send(url: string, options: { method: Dispatcher.HttpMethod; headers: Record<string, string>; body?: string | Readable }): Promise<Dispatcher.ResponseData> {
    const headers = { ...options.headers, ...(this._authorization !== undefined ? { authorization: this._authorization } : {}) };
    try {
      return await request(url, {
        method: options.method,
        headers,
        body: options.body,
        headersTimeout: this._requestTimeoutMillis,
        bodyTimeout: this._requestTimeoutMillis,
        ...(this._dispatcher !== undefined ? { dispatcher: this._dispatcher } : {}),
      });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'CONNECTION_ERROR';
      throw new MlflowError(0, code, `${options.method} ${redactUrl(url)}: ${(error as Error).message}`);
    }
  }

  private async _check(res: Dispatcher.ResponseData): Promise<void> {
    if (res.statusCode < 400) return;
    const text = await res.body.text().catch(() => '');
    let errorCode = `HTTP_${res.statusCode}`;
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { error_code?: string; message?: string };
      if (parsed.error_code !== undefined) errorCode = parsed.error_code;
      if (parsed.message !== undefined) message = parsed.message;
    } catch {
      // Not JSON (a proxy's page, a plain-text 503): keep the text.
    }
    throw new MlflowError(res.statusCode, errorCode, message, parseRetryAfter(res.headers['retry-after']));
  }

  private _retry<T>(attempt: (attemptNumber: number) => Promise<T>): Promise<T> {
    return pRetry(
      async (attemptNumber) => {
        try {
          return await attempt(attemptNumber);
        } catch (error) {
          if (error instanceof MlflowError && !error.retryable) throw new AbortError(error);
          throw error;
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        maxRetryTime: this._retryTimeoutMillis,
        factor: 2,
        minTimeout: 250,
        maxTimeout: this._retryMaxDelayMillis,
        randomize: true,
        onFailedAttempt: async ({ error }) => {
          if (error instanceof MlflowError) {
            this._onRetry?.(error);
            // Retry-After is a floor on the wait; the backoff comes on top of it.
            if (error.retryAfterMillis !== undefined) await new Promise((r) => setTimeout(r, Math.min(error.retryAfterMillis!, 60_000)));
          }
        },
      },
    );
  }
}

/** A metric value as MLflow returns it, with its SQL store's stand-ins for ±Infinity undone. */
export function decodeStoredValue(value: number | string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (n === Number.MAX_VALUE) return Infinity;
  if (n === -Number.MAX_VALUE) return -Infinity;
  return n;
}
