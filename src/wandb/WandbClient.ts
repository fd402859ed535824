// A small client for the W&B server API that run clients use: GraphQL at `{base}/graphql`
// (Viewer, UpsertBucket, RunResumeStatus, CreateRunFiles, HistoryPage), the run's file_stream, and
// upload PUTs to the URLs CreateRunFiles hands out. HTTP Basic auth with user `api`, on the shared
// HttpClient (retries of 429, 5xx and connection errors; the API key never appears in errors).

import { getStringFromEnv } from '../core/env.js';
import { HttpClient } from '../delivery/HttpClient.js';
import type { HttpRetryOptions } from '../delivery/HttpClient.js';
import { TargetError } from '../delivery/TargetError.js';

/** W&B's cloud: the product's default when `WANDB_BASE_URL` is unset. */
export const DEFAULT_WANDB_BASE_URL = 'https://api.wandb.ai';

export interface WandbClientOptions extends HttpRetryOptions {
  /** Default: env `WANDB_API_KEY`. Keys of 40 and of 86 characters (and on-prem `local-…` keys) work. */
  apiKey?: string;
  /** Default: env `WANDB_BASE_URL`, else W&B's cloud. */
  baseUrl?: string;
}

/** A failed W&B call: HTTP status (0 for a connection error, 200 for a GraphQL error) and message. */
export class WandbError extends TargetError {
  constructor(operation: string, status: number, code: string, message: string, retryAfterMillis?: number) {
    super(
      { target: 'W&B', operation, status, code, message, retryAfterMillis },
      `W&B ${operation}: ${status === 0 ? 'unreachable' : code === 'GRAPHQL' ? 'GraphQL error' : `HTTP ${status}`} ${status === 0 ? `(${code}) ` : ''}${message}`.trimEnd(),
    );
    this.name = 'WandbError';
  }

  /** 429, 5xx and connection errors are worth retrying; other 4xx and GraphQL errors are permanent. */
  override get retryable(): boolean {
    return this.code !== 'GRAPHQL' && super.retryable;
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
  /** Lines of `wandb-events.jsonl` (system metrics) W&B has. */
  eventsLineCount: number;
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

// W&B's public API pages a run's history by `_step` with this query (`Run.scan_history`).
const HISTORY_PAGE = `query HistoryPage($entity: String!, $project: String!, $run: String!, $minStep: Int64!, $maxStep: Int64!, $pageSize: Int!) {
  project(name: $project, entityName: $entity) {
    run(name: $run) { history(minStep: $minStep, maxStep: $maxStep, samples: $pageSize) }
  }
}`;

export class WandbClient {
  readonly baseUrl: string;
  readonly http: HttpClient;

  constructor(options: WandbClientOptions = {}) {
    const apiKey = (options.apiKey ?? getStringFromEnv('WANDB_API_KEY'))?.trim();
    if (apiKey === undefined || apiKey === '') throw new Error('W&B API key missing: pass apiKey or set WANDB_API_KEY');
    const base = options.baseUrl ?? getStringFromEnv('WANDB_BASE_URL') ?? DEFAULT_WANDB_BASE_URL;
    if (!/^https?:\/\//.test(base)) throw new Error(`W&B base URL must be http(s)://…, got ${JSON.stringify(base.split(apiKey).join('***'))}`);
    this.baseUrl = base.replace(/\/+$/, '');
    this.http = new HttpClient({
      ...options,
      target: 'W&B',
      // As W&B's own client: a day of retries, waits from 2 s up to a minute.
      defaults: { retryTimeoutMillis: 86_400_000, retryMinDelayMillis: 2000, retryMaxDelayMillis: 60_000, requestTimeoutMillis: 60_000 },
      authorization: `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`,
      secrets: [apiKey],
      errorFor: (init) => new WandbError(init.operation, init.status, init.code, init.message, init.retryAfterMillis),
    });
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
    const data = await this.graphql<{ model: { bucket: { historyLineCount?: number | null; eventsLineCount?: number | null; historyTail?: string | null; summaryMetrics?: string | null; config?: string | null } | null } | null }>(
      'RunResumeStatus',
      RUN_RESUME_STATUS,
      { project, entity: entity ?? null, name },
    );
    const bucket = data.model?.bucket;
    if (bucket == null) return undefined;
    return {
      historyLineCount: bucket.historyLineCount ?? 0,
      eventsLineCount: bucket.eventsLineCount ?? 0,
      historyTail: parseLines(bucket.historyTail),
      summaryMetrics: bucket.summaryMetrics ?? undefined,
      config: bucket.config ?? undefined,
    };
  }

  /** History lines of a run with `_step` in [minStep, maxStep), as W&B's public API pages them (raw extended-JSON lines). */
  async historyPage(entity: string, project: string, run: string, minStep: number, maxStep: number, pageSize: number): Promise<string[]> {
    const data = await this.graphql<{ project: { run: { history?: unknown } | null } | null }>('HistoryPage', HISTORY_PAGE, { entity, project, run, minStep, maxStep, pageSize });
    const history = data.project?.run?.history;
    return Array.isArray(history) ? history.filter((line): line is string => typeof line === 'string') : parseLines(typeof history === 'string' ? history : undefined);
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
    const res = await this.http.call(operation, `${this.baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
    let parsed: { data?: T | null; errors?: { message?: string }[] };
    try {
      parsed = JSON.parse(res.text) as typeof parsed;
    } catch {
      throw new WandbError(operation, res.status, `HTTP_${res.status}`, `response is not JSON: ${this.http.redact(res.text.slice(0, 200))}`);
    }
    if (parsed.errors !== undefined && parsed.errors.length > 0) {
      throw new WandbError(operation, res.status, 'GRAPHQL', this.http.redact(parsed.errors.map((e) => e.message ?? 'unknown error').join('; ').slice(0, 500)));
    }
    if (parsed.data == null) throw new WandbError(operation, res.status, 'GRAPHQL', 'the response has no data');
    return parsed.data;
  }

  // --- file_stream and uploads ---

  /** One file_stream request (history lines, summary, heartbeat or completion). */
  async fileStream(entity: string, project: string, run: string, body: FileStreamBody | string): Promise<void> {
    const url = `${this.baseUrl}/files/${[entity, project, run].map(encodeURIComponent).join('/')}/file_stream`;
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    await this.http.call('file_stream', url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
  }

  /** PUTs a file to an upload URL from CreateRunFiles (a signed URL: no W&B credentials are sent), streamed. */
  async uploadFile(uploadUrl: string, file: string, headers: string[] = []): Promise<void> {
    const extra: Record<string, string> = {};
    for (const header of headers) {
      const colon = header.indexOf(':');
      if (colon > 0) extra[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
    }
    await this.http.putFile('upload', uploadUrl, file, { headers: extra, auth: false });
  }

  /** Cuts off requests in flight; idempotent. */
  async close(): Promise<void> {
    await this.http.close();
  }
}

/** A JSON array of lines (W&B's historyTail), or none. */
function parseLines(text: string | null | undefined): string[] {
  try {
    const parsed: unknown = text ? JSON.parse(text) : [];
    return Array.isArray(parsed) ? parsed.filter((line): line is string => typeof line === 'string') : [];
  } catch {
    // An unreadable tail: start after the line count alone.
    return [];
  }
}
