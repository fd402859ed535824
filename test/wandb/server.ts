// A local stand-in for the parts of W&B's server API that run clients use: the GraphQL endpoint
// (Viewer, ServerFeaturesQuery, UpsertBucket, RunResumeStatus, CreateRunFiles, and Run and HistoryPage for the
// public API's scan_history, ...), file_stream
// and upload PUTs. It keeps runs in memory so tests can read them back, records every request, and
// can be told to fail the next requests. Loopback only. It is validated against the real `wandb`
// package (real-sdk.test.ts): what that client needs for init/log/finish, this server answers.

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface RecordedRequest {
  method: string;
  path: string;
  /** For GraphQL: the operation name (from `operationName`, else parsed from the document). */
  operation?: string;
  query?: string;
  variables?: Record<string, unknown>;
  /** For file_stream: the parsed JSON body. */
  body?: unknown;
  /** The raw request text (decompressed). */
  text: string;
  authorization: string | undefined;
  userAgent: string | undefined;
  contentType: string | undefined;
  /** Status code the server answered. */
  status: number;
  time: number;
}

export interface StoredWandbRun {
  /** Storage id (what UpsertBucket returns as `id`). */
  id: string;
  name: string;
  entity: string;
  project: string;
  displayName: string | undefined;
  description: string | undefined;
  notes: string | undefined;
  /** Parsed config JSON, as last upserted (each value `{ value, desc? }`). */
  config: Record<string, unknown>;
  tags: string[];
  group: string | undefined;
  jobType: string | undefined;
  state: string | undefined;
  host: string | undefined;
  program: string | undefined;
  /** Raw history lines by line index (extended JSON). */
  historyLines: string[];
  /** Summary as last sent (file_stream wandb-summary.json, or UpsertBucket summaryMetrics). */
  summary: Record<string, unknown>;
  /** Raw summary line as last sent on file_stream. */
  summaryLine: string | undefined;
  eventsLines: string[];
  outputLines: string[];
  /** Uploaded run files by name. */
  files: Map<string, Buffer>;
  /** Files the client announced in file_stream `uploaded`. */
  uploaded: string[];
  complete: boolean;
  exitcode: number | undefined;
  /** file_stream requests that carried no file and did not complete the run. */
  heartbeats: number;
  fileStreamRequests: number;
  upserts: number;
  /** Offsets that skipped lines (a client bug): `file:offset>length`. */
  gaps: string[];
}

export interface FailureSpec {
  /** HTTP status to answer, or 'reset' to destroy the connection. */
  status: number | 'reset';
  /** Only requests whose path (or GraphQL operation) matches. Default: every request. */
  match?: RegExp;
  /** Sent as Retry-After (seconds). */
  retryAfterSeconds?: number;
  /** Let this many matching requests through first. */
  skip?: number;
}

export interface WandbTestServerOptions {
  /** The default entity (the viewer's). Default `runtel-test`. */
  entity?: string;
  /** When set, requests whose Basic password differs are answered 401. */
  apiKey?: string;
  /** Server features returned by ServerFeaturesQuery. Default none. */
  features?: { name: string; isEnabled: boolean }[];
}

/** GraphQL operations a normal init/log/finish needs; a rejected one makes the validation test fail. */
export const RUN_CRITICAL_OPERATIONS: ReadonlySet<string> = new Set(['UpsertBucket', 'Viewer', 'CreateRunFiles', 'RunResumeStatus']);

export class WandbTestServer {
  readonly entity: string;
  readonly requests: RecordedRequest[] = [];
  /** GraphQL operations this server does not implement (answered with a GraphQL error). */
  readonly unknownOperations: string[] = [];
  /** Other paths it does not implement (answered 404). */
  readonly unknownPaths: string[] = [];
  private readonly _runs = new Map<string, StoredWandbRun>();
  private readonly _failures: (FailureSpec & { remaining: number; skipped: number })[] = [];
  private readonly _server: Server;
  private readonly _apiKey: string | undefined;
  private readonly _features: { name: string; isEnabled: boolean }[];
  private _url = '';
  private _nextId = 1;

  private constructor(options: WandbTestServerOptions) {
    this.entity = options.entity ?? 'runtel-test';
    this._apiKey = options.apiKey;
    this._features = options.features ?? [];
    this._server = createServer((req, res) => {
      this._handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`test server error: ${(error as Error).message}`);
        }
      });
    });
    this._server.keepAliveTimeout = 1000;
  }

  static async start(options: WandbTestServerOptions = {}): Promise<WandbTestServer> {
    const server = new WandbTestServer(options);
    await new Promise<void>((resolve, reject) => {
      server._server.once('error', reject);
      server._server.listen(0, '127.0.0.1', () => resolve());
    });
    server._url = `http://127.0.0.1:${(server._server.address() as AddressInfo).port}`;
    return server;
  }

  get url(): string {
    return this._url;
  }

  /** Answer the next `count` matching requests with a failure. */
  failNext(count: number, spec: FailureSpec): void {
    this._failures.push({ ...spec, remaining: count, skipped: 0 });
  }

  /** All stored runs. */
  get runs(): StoredWandbRun[] {
    return [...this._runs.values()];
  }

  /** A run by project and run id (name); entity defaults to the viewer's. */
  getRun(project: string, name: string, entity = this.entity): StoredWandbRun | undefined {
    return this._runs.get(`${entity}/${project}/${name}`);
  }

  /** History rows of a run, parsed from extended JSON (NaN and ±Infinity as numbers). */
  history(run: StoredWandbRun): Record<string, unknown>[] {
    return run.historyLines.map((line) => parseExtendedJson(line) as Record<string, unknown>);
  }

  /** Recorded GraphQL requests, optionally of one operation. */
  graphql(operation?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/graphql' && (operation === undefined || r.operation === operation));
  }

  /** Recorded file_stream requests. */
  fileStreams(run?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.endsWith('/file_stream') && (run === undefined || r.path.includes(`/${run}/file_stream`)));
  }

  close(): Promise<void> {
    this._server.closeAllConnections();
    return new Promise((resolve) => this._server.close(() => resolve()));
  }

  // --- request handling ---

  private async _handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const encoding = req.headers['content-encoding'];
    const text = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
    const path = (req.url ?? '/').split('?')[0]!;
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path,
      text,
      authorization: req.headers.authorization,
      userAgent: req.headers['user-agent'],
      contentType: req.headers['content-type'],
      status: 0,
      time: Date.now(),
    };
    this.requests.push(record);
    let gql: { query?: string; variables?: Record<string, unknown>; operationName?: string } | undefined;
    if (path === '/graphql' && req.method === 'POST') {
      try {
        gql = JSON.parse(text) as typeof gql;
      } catch {
        gql = {};
      }
      record.query = gql!.query;
      record.variables = gql!.variables ?? {};
      record.operation = gql!.operationName || /\b(?:query|mutation)\s+(\w+)/.exec(gql!.query ?? '')?.[1] || 'anonymous';
    }

    const failure = this._failures.find((f) => f.remaining > 0 && (f.match === undefined || f.match.test(path) || (record.operation !== undefined && f.match.test(record.operation))));
    if (failure !== undefined && failure.skipped < (failure.skip ?? 0)) {
      failure.skipped++;
    } else if (failure !== undefined) {
      failure.remaining--;
      if (failure.status === 'reset') {
        record.status = -1;
        req.socket.destroy();
        return;
      }
      record.status = failure.status;
      res.writeHead(failure.status, { 'content-type': 'application/json', ...(failure.retryAfterSeconds !== undefined ? { 'retry-after': String(failure.retryAfterSeconds) } : {}) });
      res.end(JSON.stringify({ error: `injected failure ${failure.status}` }));
      return;
    }

    // Upload URLs are signed URLs: they carry no W&B credentials.
    if (!path.startsWith('/upload/') && !this._authorized(req.headers.authorization)) {
      record.status = 401;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: 'user is not logged in' }] }));
      return;
    }

    if (gql !== undefined) return this._graphql(record, gql, res);
    const stream = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(path);
    if (stream !== null && req.method === 'POST') return this._fileStream(record, stream.slice(1).map(decodeURIComponent) as [string, string, string], text, res);
    const upload = /^\/upload\/([^/]+)\/([^/]+)\/([^/]+)\/(.+)$/.exec(path);
    if (upload !== null && req.method === 'PUT') {
      const [entity, project, name, file] = upload.slice(1).map(decodeURIComponent) as [string, string, string, string];
      const run = this._run(entity, project, name);
      run.files.set(file, encoding === 'gzip' ? gunzipSync(raw) : raw);
      return this._send(record, res, 200, {});
    }
    this.unknownPaths.push(`${req.method} ${path}`);
    return this._send(record, res, 404, { error: 'not found' });
  }

  private _authorized(header: string | undefined): boolean {
    if (this._apiKey === undefined) return true;
    const match = /^Basic (.+)$/i.exec(header ?? '');
    if (match === null) return false;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    return decoded === `api:${this._apiKey}`;
  }

  private _graphql(record: RecordedRequest, gql: { variables?: Record<string, unknown> }, res: ServerResponse): void {
    const v = gql.variables ?? {};
    const str = (key: string): string | undefined => (typeof v[key] === 'string' && v[key] !== '' ? (v[key]) : undefined);
    switch (record.operation) {
      case 'Viewer':
      case 'GetDefaultEntity':
        return this._send(record, res, 200, {
          data: { viewer: { id: 'VXNlcjox', entity: this.entity, username: 'runtel-tester', email: 'tester@example.invalid', admin: false, flags: '{}', teams: { edges: [{ node: { name: this.entity } }] } } },
        });
      case 'ServerFeaturesQuery':
        return this._send(record, res, 200, { data: { serverInfo: { features: this._features } } });
      case 'ServerInfo':
        return this._send(record, res, 200, { data: { serverInfo: { cliVersionInfo: {}, latestLocalVersionInfo: null, features: this._features } } });
      case 'UpsertBucket': {
        const entity = str('entity') ?? this.entity;
        const project = str('project') ?? 'uncategorized';
        const name = str('name') ?? this._generatedName();
        const existed = this._runs.has(`${entity}/${project}/${name}`);
        const run = this._run(entity, project, name);
        run.upserts++;
        if (str('displayName') !== undefined) run.displayName = str('displayName');
        if (str('description') !== undefined) run.description = str('description');
        if (str('notes') !== undefined) run.notes = str('notes');
        if (str('groupName') !== undefined) run.group = str('groupName');
        if (str('jobType') !== undefined) run.jobType = str('jobType');
        if (str('state') !== undefined) run.state = str('state');
        if (str('host') !== undefined) run.host = str('host');
        if (str('program') !== undefined) run.program = str('program');
        if (Array.isArray(v.tags)) run.tags = v.tags as string[];
        if (str('config') !== undefined) {
          try {
            run.config = JSON.parse(str('config')!) as Record<string, unknown>;
          } catch {
            return this._send(record, res, 200, { data: null, errors: [{ message: 'config is not valid JSON', path: ['upsertBucket'] }] });
          }
        }
        if (str('summaryMetrics') !== undefined) run.summary = { ...run.summary, ...(parseExtendedJson(str('summaryMetrics')!) as Record<string, unknown>) };
        return this._send(record, res, 200, { data: { upsertBucket: { bucket: this._bucket(run), inserted: !existed } } });
      }
      case 'RunResumeStatus': {
        const entity = str('entity') ?? this.entity;
        const project = str('project') ?? 'uncategorized';
        const run = this._runs.get(`${entity}/${project}/${str('name') ?? ''}`);
        return this._send(record, res, 200, {
          data: {
            model: {
              id: 'UHJvamVjdDox',
              name: project,
              entity: { id: 'RW50aXR5OjE=', name: entity },
              bucket: run === undefined ? null : { ...this._bucket(run), historyTail: JSON.stringify(run.historyLines.slice(-10)), eventsTail: JSON.stringify(run.eventsLines.slice(-10)), wandbConfig: JSON.stringify({ t: (run.config._wandb as { value?: { t?: unknown } } | undefined)?.value?.t ?? null }) },
            },
          },
        });
      }
      case 'Run':
      case 'RunHistoryKeys': {
        // The public API's run lookup (wandb.Api().run(path)), before it reads history.
        const run = this._runs.get(`${str('entity') ?? this.entity}/${str('project') ?? 'uncategorized'}/${str('name') ?? ''}`);
        const keys: Record<string, unknown> = {};
        for (const row of run === undefined ? [] : this.history(run)) for (const key of Object.keys(row)) keys[key] = { typeCounts: [{ type: 'number', count: 1 }] };
        return this._send(record, res, 200, {
          data: {
            project: {
              run: run === undefined ? null : {
                ...this._bucket(run),
                projectId: 1,
                state: run.complete ? (run.exitcode === 0 ? 'finished' : 'failed') : (run.state ?? 'running'),
                group: run.group ?? null,
                jobType: run.jobType ?? null,
                commit: null,
                readOnly: false,
                createdAt: '2026-01-01T00:00:00',
                heartbeatAt: '2026-01-01T00:00:00',
                systemMetrics: '{}',
                user: { name: 'runtel-tester', username: 'runtel-tester' },
                historyKeys: { keys, lastStep: Math.max(-1, ...this.history(run).map((row) => Number(row._step ?? -1))) },
              },
            },
          },
        });
      }
      case 'RunParquetHistory':
        // No parquet exports here: wandb-core then pages the history with HistoryPage.
        return this._send(record, res, 200, { data: { project: { run: { parquetHistory: { parquetUrls: [], liveData: [] } } } } });
      case 'HistoryPage': {
        // W&B's public API (scan_history): the run's history lines with `_step` in [minStep, maxStep), at most pageSize.
        const run = this._runs.get(`${str('entity') ?? this.entity}/${str('project') ?? 'uncategorized'}/${str('run') ?? ''}`);
        const min = Number(v.minStep ?? 0);
        const max = Number(v.maxStep ?? Number.MAX_SAFE_INTEGER);
        const size = Number(v.pageSize ?? 1000);
        const lines = (run?.historyLines ?? []).filter((line) => {
          const step = (parseExtendedJson(line) as { _step?: number })._step ?? -1;
          return step >= min && step < max;
        });
        return this._send(record, res, 200, { data: { project: { run: run === undefined ? null : { history: lines.slice(0, size) } } } });
      }
      case 'CreateRunFiles': {
        const entity = str('entity') ?? this.entity;
        const project = str('project') ?? 'uncategorized';
        const name = str('run') ?? '';
        const run = this._runs.get(`${entity}/${project}/${name}`);
        if (run === undefined) return this._send(record, res, 200, { data: null, errors: [{ message: `run ${entity}/${project}/${name} not found`, path: ['createRunFiles'] }] });
        const files = Array.isArray(v.files) ? (v.files as string[]) : [];
        const base = `${this._url}/upload/${[entity, project, name].map(encodeURIComponent).join('/')}`;
        return this._send(record, res, 200, {
          data: {
            createRunFiles: {
              runID: run.id,
              uploadHeaders: [],
              files: files.map((file) => ({ name: file, uploadUrl: `${base}/${file.split('/').map(encodeURIComponent).join('/')}` })),
            },
          },
        });
      }
      default:
        this.unknownOperations.push(record.operation ?? 'anonymous');
        return this._send(record, res, 200, { data: null, errors: [{ message: `runtel test server: operation ${record.operation} is not implemented` }] });
    }
  }

  private _fileStream(record: RecordedRequest, [entity, project, name]: [string, string, string], text: string, res: ServerResponse): void {
    let body: { files?: Record<string, { offset?: number; content?: string[] }>; complete?: boolean; exitcode?: number; uploaded?: string[] };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return this._send(record, res, 400, { error: 'file_stream body is not JSON' });
    }
    record.body = body;
    const run = this._runs.get(`${entity}/${project}/${name}`);
    if (run === undefined) return this._send(record, res, 404, { error: `run ${entity}/${project}/${name} not found` });
    run.fileStreamRequests++;
    const files = body.files ?? {};
    for (const [file, chunk] of Object.entries(files)) {
      const offset = chunk.offset ?? 0;
      const content = chunk.content ?? [];
      if (file === 'wandb-summary.json') {
        const line = content[content.length - 1];
        if (line !== undefined) {
          run.summaryLine = line;
          run.summary = parseExtendedJson(line) as Record<string, unknown>;
        }
        continue;
      }
      const lines = file === 'wandb-history.jsonl' ? run.historyLines : file === 'wandb-events.jsonl' ? run.eventsLines : file === 'output.log' ? run.outputLines : undefined;
      if (lines === undefined) continue;
      if (offset > lines.length) run.gaps.push(`${file}:${offset}>${lines.length}`);
      content.forEach((line, i) => {
        lines[offset + i] = line;
      });
    }
    if (Array.isArray(body.uploaded)) run.uploaded.push(...body.uploaded);
    if (body.complete === true) {
      run.complete = true;
      run.exitcode = body.exitcode ?? 0;
      run.state = run.exitcode === 0 ? 'finished' : 'failed';
    } else if (Object.keys(files).length === 0 && (body.uploaded === undefined || body.uploaded.length === 0)) {
      run.heartbeats++;
    }
    return this._send(record, res, 200, { exitcode: null, limits: {} });
  }

  private _run(entity: string, project: string, name: string): StoredWandbRun {
    const key = `${entity}/${project}/${name}`;
    let run = this._runs.get(key);
    if (run === undefined) {
      run = {
        id: Buffer.from(`Run:${this._nextId++}`).toString('base64'),
        name, entity, project,
        displayName: undefined, description: undefined, notes: undefined,
        config: {}, tags: [], group: undefined, jobType: undefined, state: 'running', host: undefined, program: undefined,
        historyLines: [], summary: {}, summaryLine: undefined, eventsLines: [], outputLines: [],
        files: new Map(), uploaded: [], complete: false, exitcode: undefined,
        heartbeats: 0, fileStreamRequests: 0, upserts: 0, gaps: [],
      };
      this._runs.set(key, run);
    }
    return run;
  }

  private _bucket(run: StoredWandbRun): Record<string, unknown> {
    return {
      id: run.id,
      name: run.name,
      displayName: run.displayName ?? run.name,
      description: run.description ?? null,
      notes: run.notes ?? null,
      config: JSON.stringify(run.config),
      summaryMetrics: JSON.stringify(run.summary),
      tags: run.tags,
      sweepName: null,
      historyLineCount: run.historyLines.length,
      eventsLineCount: run.eventsLines.length,
      logLineCount: run.outputLines.length,
      project: { id: 'UHJvamVjdDox', name: run.project, entity: { id: 'RW50aXR5OjE=', name: run.entity } },
    };
  }

  private _generatedName(): string {
    return `gen${(this._nextId++).toString(36)}`;
  }

  private _send(record: RecordedRequest, res: ServerResponse, status: number, body: unknown): void {
    record.status = status;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const SENTINEL = '\u0000runtel-nonfinite:';

/** JSON with W&B's extensions: bare `NaN`, `Infinity` and `-Infinity` tokens become those numbers. */
export function parseExtendedJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === '\\') {
        out += text[++i] ?? '';
      } else if (c === '"') {
        inString = false;
      }
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = text.startsWith('NaN', i) ? 'NaN' : text.startsWith('-Infinity', i) ? '-Infinity' : text.startsWith('Infinity', i) ? 'Infinity' : undefined;
    if (token !== undefined) {
      out += JSON.stringify(SENTINEL + token);
      i += token.length - 1;
      continue;
    }
    out += c;
  }
  return JSON.parse(out, (_key, value: unknown) => (typeof value === 'string' && value.startsWith(SENTINEL) ? Number(value.slice(SENTINEL.length)) : value));
}
