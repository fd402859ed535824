// A small typed client for MLflow's tracking REST API (`/api/2.0/mlflow/...`) and its artifact
// proxy, on the shared HttpClient (retries, Retry-After, redaction, timers that let a process exit).

import { getBooleanFromEnv, getStringFromEnv } from '../core/env.js';
import { HttpClient, redactUrl } from '../delivery/HttpClient.js';
import type { HttpRetryOptions } from '../delivery/HttpClient.js';
import { TargetError } from '../delivery/TargetError.js';
import type { TargetErrorInit } from '../delivery/TargetError.js';

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

export interface MlflowClientOptions extends HttpRetryOptions {
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
}

/**
 * MLflow 3's kind of experiment (an experiment tag): `custom_model_development` marks model training
 * (runs, their charts), `genai_development` GenAI apps. MLflow 3.17.2's own UI does not read it: its
 * sidebar switch picks the view (GenAI by default, remembered by the browser).
 */
export const EXPERIMENT_KIND_TAG = 'mlflow.experimentKind';
export const EXPERIMENT_KIND_TRAINING = 'custom_model_development';

/** SQLAlchemy's pool timeout, as MLflow passes it on: "QueuePool limit of size 5 overflow 10 reached, connection timed out". */
const POOL_EXHAUSTED = /QueuePool limit of size \d+ overflow \d+ reached/;

/** A failed MLflow call: HTTP status (0 for a connection error), MLflow's error_code and message. */
export class MlflowError extends TargetError {
  constructor(status: number, errorCode: string, message: string, retryAfterMillis?: number, operation = 'request') {
    super(
      { target: 'MLflow', operation, status, code: errorCode, message, retryAfterMillis },
      `MLflow ${status === 0 ? 'unreachable' : `HTTP ${status}`} ${errorCode}: ${message}`,
    );
    this.name = 'MlflowError';
  }

  /** MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, …), or `HTTP_<status>`, or a connection error code. */
  get errorCode(): string {
    return this.code;
  }

  /**
   * 429, 5xx and connection errors are worth retrying; other 4xx are permanent, except one: MLflow's
   * SQL store answers 400 BAD_REQUEST when its database connection pool is exhausted (SQLAlchemy's
   * TimeoutError is not an OperationalError, which it would map to 503), an overload that passes.
   */
  override get retryable(): boolean {
    return super.retryable || (this.status === 400 && POOL_EXHAUSTED.test(this.message));
  }
}

function mlflowError(init: TargetErrorInit): TargetError {
  return new MlflowError(init.status, init.code, init.message, init.retryAfterMillis, init.operation);
}

export class MlflowClient {
  readonly trackingUri: string;
  readonly http: HttpClient;

  constructor(options: MlflowClientOptions = {}) {
    const uri = options.trackingUri ?? getStringFromEnv('MLFLOW_TRACKING_URI');
    if (uri === undefined) throw new Error('MLflow tracking URI missing: pass trackingUri or set MLFLOW_TRACKING_URI');
    if (!/^https?:\/\//.test(uri)) throw new Error(`MLflow tracking URI must be http(s)://…, got ${JSON.stringify(redactUrl(uri))}`);
    this.trackingUri = uri.replace(/\/+$/, '');
    const username = options.username ?? getStringFromEnv('MLFLOW_TRACKING_USERNAME');
    const password = options.password ?? getStringFromEnv('MLFLOW_TRACKING_PASSWORD');
    const token = options.token ?? getStringFromEnv('MLFLOW_TRACKING_TOKEN');
    let authorization: string | undefined;
    if (username !== undefined && password !== undefined) authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    else if (token !== undefined) authorization = `Bearer ${token}`;
    this.http = new HttpClient({
      ...options,
      target: 'MLflow',
      // Ten minutes of retries; waits double from 250 ms up to 10 s, so delivery resumes soon after an outage ends.
      defaults: { retryTimeoutMillis: 600_000, retryMinDelayMillis: 250, retryMaxDelayMillis: 10_000, requestTimeoutMillis: 30_000 },
      authorization,
      secrets: [password ?? '', token ?? ''],
      insecureTls: options.insecureTls ?? getBooleanFromEnv('MLFLOW_TRACKING_INSECURE_TLS') ?? false,
      serverCertPath: options.serverCertPath ?? getStringFromEnv('MLFLOW_TRACKING_SERVER_CERT_PATH'),
      errorFor: mlflowError,
      // `mlflow server --workers N` is a pre-fork server, each connection served by one worker for its life;
      // opened together, a client's connections split 4:1, 5:1 or 5:0. On PostgreSQL with 2 workers, 6 fresh
      // loggers of 100,000 points each, alternately: 15,509–17,616 points/s (mean 16,343) spread so, against
      // 10,884–17,160 (mean 14,451) not. Renewed by age, not by count, so a fast server's requests never wait
      // for a connection. Over https a proxy spreads the requests, and a new connection costs a TLS
      // handshake: kept there.
      spreadConnections: { connectSpacingMillis: 25, ...(this.trackingUri.startsWith('http:') ? { maxConnectionAgeMillis: 1000 } : {}) },
    });
  }

  // --- experiments ---

  async getExperimentIdByName(name: string): Promise<string | undefined> {
    try {
      const res = await this._call<{ experiment: { experiment_id: string } }>('get-experiment', 'GET', `experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`);
      return res.experiment.experiment_id;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /**
   * Race-safe: a concurrent create answers RESOURCE_ALREADY_EXISTS (HTTP 400), then we look it up
   * again. An experiment runtel creates is marked a model-training one (EXPERIMENT_KIND_TAG); one that
   * exists is left as it is.
   */
  async getOrCreateExperiment(name: string): Promise<string> {
    return (await this.ensureExperiment(name)).experimentId;
  }

  /** getOrCreateExperiment, telling whether this call created it (then no run can be in it yet). */
  async ensureExperiment(name: string): Promise<{ experimentId: string; created: boolean }> {
    const existing = await this.getExperimentIdByName(name);
    if (existing !== undefined) return { experimentId: existing, created: false };
    try {
      const res = await this._call<{ experiment_id: string }>('create-experiment', 'POST', 'experiments/create', {
        name,
        tags: [{ key: EXPERIMENT_KIND_TAG, value: EXPERIMENT_KIND_TRAINING }],
      });
      return { experimentId: res.experiment_id, created: true };
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_ALREADY_EXISTS') {
        const id = await this.getExperimentIdByName(name);
        if (id !== undefined) return { experimentId: id, created: false };
      }
      throw error;
    }
  }

  /** Every active experiment: id → name (all pages). */
  async searchExperiments(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let pageToken: string | undefined;
    do {
      const page = await this._call<{ experiments?: Array<{ experiment_id: string; name: string }>; next_page_token?: string }>('search-experiments', 'POST', 'experiments/search', {
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
    const res = await this._call<{ experiment: { name: string } }>('get-experiment', 'GET', `experiments/get?experiment_id=${encodeURIComponent(experimentId)}`);
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
    const find = options.findCreated;
    const res = await this._call<{ run: MlflowRun }>('create-run', 'POST', 'runs/create', body, find && (async () => {
      const info = await find();
      return info === undefined ? undefined : { run: { info, data: {} } };
    }));
    return res.run.info;
  }

  async getRun(runId: string): Promise<MlflowRun> {
    const res = await this._call<{ run: MlflowRun }>('get-run', 'GET', `runs/get?run_id=${encodeURIComponent(runId)}`);
    return res.run;
  }

  /** Runs in `experimentIds` matching an MLflow search filter (all pages). */
  async searchRuns(experimentIds: string[], filter: string, runViewType: 'ACTIVE_ONLY' | 'ALL' = 'ACTIVE_ONLY'): Promise<MlflowRun[]> {
    const runs: MlflowRun[] = [];
    let pageToken: string | undefined;
    do {
      const res = await this._call<{ runs?: MlflowRun[]; next_page_token?: string }>('search-runs', 'POST', 'runs/search', {
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

  /** The first run whose tag `key` is `value`, in any of `experimentIds` (asked in slices: MLflow caps the experiments of one search). */
  async findRunByTag(experimentIds: readonly string[], key: string, value: string): Promise<MlflowRun | undefined> {
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(value)) return undefined; // never put odd characters into a filter string
    for (let i = 0; i < experimentIds.length; i += 100) {
      const found = (await this.searchRuns(experimentIds.slice(i, i + 100), `tags.\`${key}\` = '${value}'`))[0];
      if (found !== undefined) return found;
    }
    return undefined;
  }

  async logBatch(body: { run_id: string; metrics?: MlflowMetric[]; params?: MlflowKeyValue[]; tags?: MlflowKeyValue[] }): Promise<void> {
    await this._call('log-batch', 'POST', 'runs/log-batch', body);
  }

  async updateRun(body: { run_id: string; status: MlflowRunStatus; end_time?: number; run_name?: string }): Promise<void> {
    await this._call('update-run', 'POST', 'runs/update', body);
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this._call('set-tag', 'POST', 'runs/set-tag', { run_id: runId, key, value });
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
      const res = await this._call<{ metrics?: MlflowMetric[]; next_page_token?: string }>('get-metric-history', 'GET', `metrics/get-history?${query}`);
      for (const m of res.metrics ?? []) out.push({ ...m, value: decodeStoredValue(m.value), timestamp: Number(m.timestamp), step: Number(m.step ?? 0) });
      pageToken = res.next_page_token;
    } while (pageToken);
    return out;
  }

  // --- artifacts (through the tracking server's proxy) ---

  /** Streams a file to `mlflow-artifacts:/<path>` (the run's artifact_uri plus the artifact name). */
  async uploadArtifact(artifactPath: string, file: string): Promise<void> {
    await this.http.putFile('upload-artifact', this._artifactUrl(artifactPath), file);
  }

  /** The bytes of an artifact (for tests and sync checks). */
  async downloadArtifact(artifactPath: string): Promise<Buffer> {
    return this.http.getBytes('download-artifact', this._artifactUrl(artifactPath));
  }

  /** Cuts off requests in flight; idempotent. */
  async close(): Promise<void> {
    await this.http.close();
  }

  private _artifactUrl(artifactPath: string): string {
    return `${this.trackingUri}/api/2.0/mlflow-artifacts/artifacts/${artifactPath.split('/').map(encodeURIComponent).join('/')}`;
  }

  private _call<T = unknown>(operation: string, method: 'GET' | 'POST', path: string, body?: unknown, beforeRetry?: () => Promise<T | undefined>): Promise<T> {
    return this.http.json<T>(operation, method, `${this.trackingUri}/api/2.0/mlflow/${path}`, body, beforeRetry);
  }
}

/** MLflow's answer for a run or experiment that does not exist. */
export function isMissing(error: unknown): boolean {
  return error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST';
}

/** NaN and ±Infinity as the quoted strings MLflow's JSON parser accepts. */
export function toMlflowMetricValue(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

/** A metric value as MLflow returns it, with its SQL store's stand-ins for ±Infinity undone. */
export function decodeStoredValue(value: number | string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (n === Number.MAX_VALUE) return Infinity;
  if (n === -Number.MAX_VALUE) return -Infinity;
  return n;
}
