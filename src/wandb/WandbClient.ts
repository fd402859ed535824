// A small client for the W&B server API that run clients use: GraphQL at `{base}/graphql`
// (Viewer, UpsertBucket, RunResumeStatus, CreateRunFiles), the run's file_stream, and upload PUTs to
// the URLs CreateRunFiles hands out. HTTP Basic auth with user `api`. Retries 429, 5xx and
// connection errors with exponential backoff and jitter (p-retry), honouring Retry-After; 400, 401,
// 403, 404, 409 and the other 4xx are permanent. The API key never appears in errors.

import { createReadStream, statSync } from 'node:fs';
import pRetry, { AbortError } from 'p-retry';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { getStringFromEnv } from '../core/env.js';
import { parseRetryAfter, redactUrl } from '../core/http.js';

/** W&B's cloud: the product's default when `WANDB_BASE_URL` is unset. */
export const DEFAULT_WANDB_BASE_URL = 'https://api.wandb.ai';

export interface WandbClientOptions {
  /** Default: env `WANDB_API_KEY`. Keys of 40 and of 86 characters (and on-prem `local-…` keys) work. */
  apiKey?: string;
  /** Default: env `WANDB_BASE_URL`, else W&B's cloud. */
  baseUrl?: string;
  /** How long a request is retried before it is given up. Default 86,400,000 (24 hours). */
  retryTimeoutMillis?: number;
  /** First backoff wait. Default 2000 (as W&B's own client). */
  retryMinDelayMillis?: number;
  /** Longest backoff wait. Default 60000 (as W&B's own client). */
  retryMaxDelayMillis?: number;
  /** Per attempt. Default 60000. */
  requestTimeoutMillis?: number;
  /**
   * Backoff timers do not keep the process alive (default true): a program that ends while W&B is
   * unreachable exits instead of waiting; the JSONL store keeps the run for `runtel sync --to wandb`.
   */
  unrefTimers?: boolean;
  /** Called before each retry (for counting). */
  onRetry?: (error: WandbError) => void;
}

/** A failed W&B call: HTTP status (0 for a connection error, 200 for a GraphQL error) and message. */
export class WandbError extends Error {
  readonly status: number;
  /** `HTTP_<status>`, `GRAPHQL` or a connection error code such as `ECONNREFUSED`. */
  readonly code: string;
  readonly operation: string;
  readonly retryAfterMillis: number | undefined;

  constructor(operation: string, status: number, code: string, message: string, retryAfterMillis?: number) {
    super(`W&B ${operation}: ${status === 0 ? 'unreachable' : code === 'GRAPHQL' ? 'GraphQL error' : `HTTP ${status}`} ${status === 0 ? `(${code}) ` : ''}${message}`.trimEnd());
    this.name = 'WandbError';
    this.operation = operation;
    this.status = status;
    this.code = code;
    this.retryAfterMillis = retryAfterMillis;
  }

  /** 429, 5xx and connection errors are worth retrying; other 4xx and GraphQL errors are permanent. */
  get retryable(): boolean {
    return this.code !== 'GRAPHQL' && (this.status === 0 || this.status === 429 || this.status >= 500);
  }
}

export interface WandbBucket {
  /** Storage id. */
  id: string;
  /** The run id. */
  name: string;
  displayName?: string | null;
  historyLineCount?: number | null;
  project?: { id?: string; name: string; entity?: { id?: string; name: string } } | null;
}

export interface UpsertBucketInput {
  name: string;
  project: string;
  entity?: string | undefined;
  displayName?: string | undefined;
  groupName?: string | undefined;
  jobType?: string | undefined;
  notes?: string | undefined;
  host?: string | undefined;
  program?: string | undefined;
  /** JSON: every value wrapped as `{ "value": v }`. */
  config?: string | undefined;
  tags?: string[] | undefined;
  state?: string | undefined;
  summaryMetrics?: string | undefined;
}

export interface ResumeStatus {
  historyLineCount: number;
  /** The last history lines W&B keeps for resumes (raw extended-JSON lines). */
  historyTail: string[];
  /** JSON of the summary. */
  summaryMetrics: string | undefined;
  config: string | undefined;
}

/** One file_stream request body. */
export interface FileStreamBody {
  files?: Record<string, { offset: number; content: string[] }>;
  uploaded?: string[];
  complete?: boolean;
  exitcode?: number;
  preempting?: boolean;
}

const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $groupName: String, $description: String, $displayName: String, $notes: String, $commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString) {
  upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity, description: $description, displayName: $displayName, notes: $notes, config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, summaryMetrics: $summaryMetrics}) {
    bucket { id name displayName description historyLineCount project { id name entity { id name } } }
    inserted
  }
}`;

const VIEWER = `query Viewer {
  viewer { id entity username teams { edges { node { name } } } }
}`;

const RUN_RESUME_STATUS = `query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) {
    id name entity { id name }
    bucket(name: $name, missingOk: true) { id name summaryMetrics displayName logLineCount historyLineCount eventsLineCount historyTail eventsTail config tags notes }
  }
}`;

const CREATE_RUN_FILES = `mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
    runID uploadHeaders files { name uploadUrl }
  }
}`;

export class WandbClient {
  readonly baseUrl: string;
  private readonly _apiKey: string;
  private readonly _authorization: string;
  private readonly _retryTimeoutMillis: number;
  private readonly _minDelay: number;
  private readonly _maxDelay: number;
  private readonly _requestTimeoutMillis: number;
  private readonly _unref: boolean;
  private readonly _onRetry: ((error: WandbError) => void) | undefined;

  constructor(options: WandbClientOptions = {}) {
    const apiKey = options.apiKey ?? getStringFromEnv('WANDB_API_KEY');
    if (apiKey === undefined || apiKey.trim() === '') throw new Error('W&B API key missing: pass apiKey or set WANDB_API_KEY');
    this._apiKey = apiKey.trim();
    const base = options.baseUrl ?? getStringFromEnv('WANDB_BASE_URL') ?? DEFAULT_WANDB_BASE_URL;
    if (!/^https?:\/\//.test(base)) throw new Error(`W&B base URL must be http(s)://…, got ${JSON.stringify(this._redact(base))}`);
    this.baseUrl = base.replace(/\/+$/, '');
    this._authorization = `Basic ${Buffer.from(`api:${this._apiKey}`).toString('base64')}`;
    this._retryTimeoutMillis = options.retryTimeoutMillis ?? 86_400_000;
    this._minDelay = options.retryMinDelayMillis ?? 2000;
    this._maxDelay = Math.max(this._minDelay, options.retryMaxDelayMillis ?? 60_000);
    this._requestTimeoutMillis = options.requestTimeoutMillis ?? 60_000;
    this._unref = options.unrefTimers ?? true;
    this._onRetry = options.onRetry;
  }

  // --- GraphQL ---

  /** The default entity of the key's user. */
  async viewerEntity(): Promise<string | undefined> {
    const data = await this.graphql<{ viewer: { entity?: string | null } | null }>('Viewer', VIEWER, {});
    return data.viewer?.entity ?? undefined;
  }

  /** Creates or updates a run (an upsert keyed by entity, project and run id). */
  async upsertBucket(input: UpsertBucketInput): Promise<{ bucket: WandbBucket; inserted: boolean }> {
    const variables: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(input)) if (value !== undefined) variables[key] = value;
    const data = await this.graphql<{ upsertBucket: { bucket: WandbBucket; inserted?: boolean } | null }>('UpsertBucket', UPSERT_BUCKET, variables);
    if (data.upsertBucket?.bucket == null) throw new WandbError('UpsertBucket', 200, 'GRAPHQL', 'the response has no bucket');
    return { bucket: data.upsertBucket.bucket, inserted: data.upsertBucket.inserted ?? false };
  }

  /** What the server has of a run (undefined when it has none): line counts, history tail, summary. */
  async runResumeStatus(entity: string | undefined, project: string, name: string): Promise<ResumeStatus | undefined> {
    const data = await this.graphql<{ model: { bucket: { historyLineCount?: number | null; historyTail?: string | null; summaryMetrics?: string | null; config?: string | null } | null } | null }>(
      'RunResumeStatus',
      RUN_RESUME_STATUS,
      { project, entity: entity ?? null, name },
    );
    const bucket = data.model?.bucket;
    if (bucket == null) return undefined;
    let tail: string[] = [];
    try {
      const parsed: unknown = bucket.historyTail ? JSON.parse(bucket.historyTail) : [];
      if (Array.isArray(parsed)) tail = parsed.filter((line): line is string => typeof line === 'string');
    } catch {
      // An unreadable tail: start after the line count alone.
    }
    return {
      historyLineCount: bucket.historyLineCount ?? 0,
      historyTail: tail,
      summaryMetrics: bucket.summaryMetrics ?? undefined,
      config: bucket.config ?? undefined,
    };
  }

  /** Upload URLs (and extra headers) for run files. */
  async createRunFiles(entity: string, project: string, run: string, files: string[]): Promise<{ uploadHeaders: string[]; files: { name: string; uploadUrl: string }[] }> {
    const data = await this.graphql<{ createRunFiles: { uploadHeaders?: string[] | null; files?: { name: string; uploadUrl: string }[] | null } | null }>(
      'CreateRunFiles',
      CREATE_RUN_FILES,
      { entity, project, run, files },
    );
    const result = data.createRunFiles;
    if (result == null) throw new WandbError('CreateRunFiles', 200, 'GRAPHQL', 'the response has no createRunFiles');
    return { uploadHeaders: result.uploadHeaders ?? [], files: result.files ?? [] };
  }

  /** One GraphQL request; GraphQL errors are permanent WandbErrors. */
  async graphql<T>(operation: string, query: string, variables: Record<string, unknown>): Promise<T> {
    const payload = JSON.stringify({ query, variables, operationName: operation });
    return this._retry(operation, async () => {
      const res = await this._send(operation, `${this.baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, auth: true });
      const text = await this._check(operation, res);
      let parsed: { data?: T | null; errors?: { message?: string }[] };
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        throw new WandbError(operation, res.statusCode, 'HTTP_' + res.statusCode, `response is not JSON: ${this._redact(text.slice(0, 200))}`);
      }
      if (parsed.errors !== undefined && parsed.errors.length > 0) {
        throw new WandbError(operation, res.statusCode, 'GRAPHQL', this._redact(parsed.errors.map((e) => e.message ?? 'unknown error').join('; ').slice(0, 500)));
      }
      if (parsed.data == null) throw new WandbError(operation, res.statusCode, 'GRAPHQL', 'the response has no data');
      return parsed.data;
    });
  }

  // --- file_stream and uploads ---

  /** One file_stream request (history lines, summary, heartbeat or completion). */
  async fileStream(entity: string, project: string, run: string, body: FileStreamBody | string): Promise<void> {
    const url = `${this.baseUrl}/files/${[entity, project, run].map(encodeURIComponent).join('/')}/file_stream`;
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    await this._retry('file_stream', async () => {
      const res = await this._send('file_stream', url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, auth: true });
      await this._check('file_stream', res);
    });
  }

  /**
   * PUTs a file to an upload URL from CreateRunFiles (a signed URL: no W&B credentials are sent).
   * The file is streamed, never read whole into memory.
   */
  async uploadFile(uploadUrl: string, file: string, headers: string[] = []): Promise<void> {
    const extra: Record<string, string> = {};
    for (const header of headers) {
      const colon = header.indexOf(':');
      if (colon > 0) extra[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
    }
    await this._retry('upload', async () => {
      const size = statSync(file).size;
      const res = await this._send('upload', uploadUrl, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', ...extra, 'content-length': String(size) },
        body: createReadStream(file),
        auth: false,
      });
      await this._check('upload', res);
    });
  }

  // --- plumbing ---

  private async _send(operation: string, url: string, options: { method: string; headers: Record<string, string>; body: string | NodeJS.ReadableStream; auth: boolean }): Promise<Dispatcher.ResponseData> {
    const headers = { ...options.headers, 'user-agent': 'runtel', ...(options.auth ? { authorization: this._authorization } : {}) };
    try {
      return await request(url, {
        method: options.method,
        headers,
        body: options.body as Dispatcher.DispatchOptions['body'],
        headersTimeout: this._requestTimeoutMillis,
        bodyTimeout: this._requestTimeoutMillis,
      });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'CONNECTION_ERROR';
      throw new WandbError(operation, 0, code, `${options.method} ${redactUrl(url)}: ${this._redact((error as Error).message)}`);
    }
  }

  /** The body text of a 2xx response; a WandbError otherwise. */
  private async _check(operation: string, res: Dispatcher.ResponseData): Promise<string> {
    const text = await res.body.text().catch(() => '');
    if (res.statusCode < 300) return text;
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { error?: string | { message?: string }; errors?: { message?: string }[]; message?: string };
      const fromErrors = parsed.errors?.map((e) => e.message).filter(Boolean).join('; ');
      message = (typeof parsed.error === 'string' ? parsed.error : parsed.error?.message) ?? fromErrors ?? parsed.message ?? message;
    } catch {
      // Not JSON (a proxy's page, a plain-text 503): keep the text.
    }
    throw new WandbError(operation, res.statusCode, `HTTP_${res.statusCode}`, this._redact(message), parseRetryAfter(res.headers['retry-after']));
  }

  private _retry<T>(operation: string, attempt: () => Promise<T>): Promise<T> {
    return pRetry(
      async () => {
        try {
          return await attempt();
        } catch (error) {
          if (error instanceof WandbError && !error.retryable) throw new AbortError(error);
          throw error;
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        maxRetryTime: this._retryTimeoutMillis,
        factor: 2,
        minTimeout: this._minDelay,
        maxTimeout: this._maxDelay,
        randomize: true,
        unref: this._unref,
        onFailedAttempt: async ({ error }) => {
          if (!(error instanceof WandbError)) return;
          this._onRetry?.(error);
          // Retry-After (up to a minute) is a floor on the wait; the backoff comes on top of it.
          if (error.retryAfterMillis !== undefined && error.retryAfterMillis > 0) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, Math.min(error.retryAfterMillis!, Math.max(this._maxDelay, 60_000)));
              if (this._unref) timer.unref();
            });
          }
        },
      },
    ).catch((error: unknown) => {
      // p-retry gives up with the last error; name the operation for the report.
      if (error instanceof WandbError) throw error;
      throw new WandbError(operation, 0, 'ERROR', this._redact(error instanceof Error ? error.message : String(error)));
    });
  }

  /** The text with the API key (and its Basic form) replaced. */
  private _redact(text: string): string {
    let out = text;
    if (this._apiKey !== undefined && this._apiKey !== '') out = out.split(this._apiKey).join('***');
    if (this._authorization !== undefined) out = out.split(this._authorization.slice(6)).join('***');
    return out;
  }
}
