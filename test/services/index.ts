// Real services for tests: Jaeger v2, the custom OpenTelemetry Collector, Prometheus, PostgreSQL
// and MLflow (on a SQLite or a PostgreSQL store).
//
// The binaries come from `bash scripts/provision.sh`, cached outside the clone in
// ${RUNTEL_CACHE_DIR:-~/.cache/runtel}. Each start picks free loopback ports, so tests may run
// several instances in parallel; nothing binds a fixed port or a non-loopback address.
// A missing binary always throws (never skips): the test command provisions first.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const HOST = '127.0.0.1';

/** Where provision.sh puts everything. */
export function cacheDir(): string {
  return process.env.RUNTEL_CACHE_DIR ?? join(homedir(), '.cache', 'runtel');
}

/** The provision.sh target that produces each binary. */
const PROVIDED_BY: Record<string, string> = {
  jaeger: 'jaeger',
  'otelcol-runtel': 'otelcol',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  mlflow: 'mlflow',
  initdb: 'postgres',
  postgres: 'postgres',
  psql: 'postgres',
  chromium: 'chromium',
};

function requireExecutable(path: string, what: string, target: string): string {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    const ci = process.env.CI === 'true' ? ' CI=true: a missing service is a failure, not a skip.' : '';
    throw new Error(
      `runtel test services: ${what} is not provisioned (expected an executable at ${path}). ` +
        `Run \`bash scripts/provision.sh ${target}\` first (cache dir ${cacheDir()}, override with RUNTEL_CACHE_DIR).${ci}`,
    );
  }
}

/** Path of a provisioned binary under `<cache>/bin`; throws with a provisioning hint when missing. */
export function requireBinary(name: string): string {
  return requireExecutable(join(cacheDir(), 'bin', name), name, PROVIDED_BY[name] ?? 'all');
}

/** Python of the MLflow venv. */
export function mlflowPython(): string {
  return requireExecutable(join(cacheDir(), 'venv-mlflow', 'bin', 'python'), 'the MLflow venv', 'mlflow');
}

/** Python of the venv holding the wandb package. */
export function wandbPython(): string {
  return requireExecutable(join(cacheDir(), 'venv-wandb', 'bin', 'python'), 'the wandb venv', 'mlflow');
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: no TCP address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

// ---- process bookkeeping -------------------------------------------------------------------

/** Children still running, killed (whole process group) when this process exits. */
const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let cleanupRegistered = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function cleanupNow(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  process.on('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupNow();
      process.removeListener(signal, onSignal);
      // Nobody else handles it: end the way the signal would have.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function makeTempDir(prefix: string): string {
  registerCleanup();
  const dir = mkdtempSync(join(tmpdir(), `runtel-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** One running child whose stdout+stderr go to a log file. */
interface Proc {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Size of the log file when this child started: its own output begins there. */
  readonly logOffset: number;
  /** Set once the child has exited. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exitPromise: Promise<void>;
}

function launch(cmd: string, args: string[], opts: { logFile: string; cwd: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number }): Proc {
  registerCleanup();
  const logOffset = fileSize(opts.logFile);
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', fd, fd],
      detached: true, // own process group, so stop() also ends the service's own children
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
  } finally {
    closeSync(fd);
  }
  live.add(child);
  const proc: Proc = {
    child,
    logFile: opts.logFile,
    logOffset,
    exited: undefined,
    exitPromise: new Promise<void>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (proc.exited === undefined) proc.exited = { code, signal };
        live.delete(child);
        resolve();
      };
      child.once('exit', done);
      child.once('error', (err) => {
        appendNote(opts.logFile, `spawn ${cmd} failed: ${err.message}`);
        done(null, null);
      });
    }),
  };
  return proc;
}

function appendNote(logFile: string, note: string): void {
  try {
    writeFileSync(logFile, `\n[runtel test services] ${note}\n`, { flag: 'a' });
  } catch {
    // ignore
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readLog(proc: Proc): string {
  try {
    return readFileSync(proc.logFile).subarray(proc.logOffset).toString('utf8');
  } catch {
    return '';
  }
}

function logTail(proc: Proc, lines = 30): string {
  return readLog(proc).trimEnd().split('\n').slice(-lines).join('\n');
}

/** SIGTERM the process group, SIGKILL it if it is still there after `graceMs`. */
async function terminate(proc: Proc, graceMs = 10_000): Promise<void> {
  if (proc.exited !== undefined) return;
  killGroup(proc.child, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    proc.exitPromise.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    killGroup(proc.child, 'SIGKILL');
    await proc.exitPromise;
  }
  // Anything the service spawned itself dies with the group.
  killGroup(proc.child, 'SIGKILL');
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

/** Poll `probe` until it returns true; fail early, with the log tail, if the process exits. */
async function waitUntil(proc: Proc, what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exited !== undefined) {
      const log = logTail(proc);
      throw new StartError(
        `${what} exited before it was ready (code ${proc.exited.code}, signal ${proc.exited.signal}); log ${proc.logFile}:\n${log}`,
        /address already in use/i.test(log),
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new StartError(`${what} was not ready after ${timeoutMs} ms; log ${proc.logFile}:\n${logTail(proc)}`, false);
    }
    await sleep(150);
  }
}

async function httpOk(url: string, check?: (body: string) => boolean): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  const body = await res.text();
  return res.ok && (check === undefined || check(body));
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Start with fresh ports; a lost race for a port ("address already in use") is retried. */
async function withPortRetry<T>(attempt: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof StartError && err.addressInUse) || i >= tries) throw err;
    }
  }
}

async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

// ---- Jaeger v2 -----------------------------------------------------------------------------

export interface JaegerHandle {
  /** OTLP/HTTP base URL (append /v1/traces). */
  readonly otlpHttpUrl: string;
  readonly otlpGrpcPort: number;
  /** Query service base URL (/api/services, /api/traces, /api/v3/...). */
  readonly queryUrl: string;
  readonly queryGrpcPort: number;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

function jaegerConfig(p: { otlpGrpc: number; otlpHttp: number; queryHttp: number; queryGrpc: number }): string {
  return `# written by test/services for one test instance
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    # On by default in v2: it would trace its own queries and try to export them to
    # localhost:4317, stalling shutdown for 10 s (or feeding another test's receiver).
    enable_tracing: false
    http:
      endpoint: ${HOST}:${p.queryHttp}
    grpc:
      endpoint: ${HOST}:${p.queryGrpc}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${HOST}:${p.otlpGrpc}
      http:
        endpoint: ${HOST}:${p.otlpHttp}

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

/** Jaeger v2 all-in-one with in-memory storage, OTLP in and the query API, on free loopback ports. */
export async function startJaeger(options: { timeoutMs?: number } = {}): Promise<JaegerHandle> {
  const bin = requireBinary('jaeger');
  return withPortRetry(async () => {
    const [otlpGrpc, otlpHttp, queryHttp, queryGrpc] = (await freePorts(4)) as [number, number, number, number];
    const dir = makeTempDir('jaeger');
    const configPath = join(dir, 'jaeger.yaml');
    writeFileSync(configPath, jaegerConfig({ otlpGrpc, otlpHttp, queryHttp, queryGrpc }));
    const proc = launch(bin, ['--config', configPath], { logFile: join(dir, 'jaeger.log'), cwd: dir });
    const queryUrl = `http://${HOST}:${queryHttp}`;
    try {
      // Extensions (the query API) start before the receivers: wait for both.
      await waitUntil(
        proc,
        'jaeger',
        async () =>
          (await httpOk(`${queryUrl}/api/services`, (b) => isJsonObject(b))) && (await tcpOpen(otlpHttp)) && (await tcpOpen(otlpGrpc)),
        options.timeoutMs ?? 60_000,
      );
    } catch (err) {
      await terminate(proc, 2_000);
      removeTempDir(dir);
      throw err;
    }
    return {
      otlpHttpUrl: `http://${HOST}:${otlpHttp}`,
      otlpGrpcPort: otlpGrpc,
      queryUrl,
      queryGrpcPort: queryGrpc,
      pid: proc.child.pid!,
      logFile: proc.logFile,
      async stop() {
        await terminate(proc);
        removeTempDir(dir);
      },
    };
  });
}

function isJsonObject(body: string): boolean {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null;
  } catch {
    return false;
  }
}

// ---- OpenTelemetry Collector ---------------------------------------------------------------

export interface CollectorHandle {
  /** pid of the current process (changes on restart). */
  readonly pid: number;
  readonly configPath: string;
  readonly logFile: string;
  /** Everything the collector has logged so far (all starts). */
  logs(): string;
  stop(): Promise<void>;
  /** Stop and start again with the same config (same ports, same file_storage directories). */
  restart(): Promise<void>;
}

export interface CollectorOptions {
  /** Probe URL that answers 2xx once the collector is ready (e.g. its health_check endpoint). */
  readyUrl?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * A collector with an OTLP/HTTP receiver whose `signals` pipelines (batch processor) forward to
 * `targetUrl` with one `otlp_http` exporter: `exporterYaml` adds settings to it (indented four
 * spaces), `batchYaml` replaces the batch processor's `{}`. Returns it and its OTLP/HTTP base URL.
 */
export async function startForwardingCollector(
  targetUrl: string,
  options: { signals?: Array<'logs' | 'traces'>; exporterYaml?: string; batchYaml?: string } = {},
): Promise<{ collector: CollectorHandle; otlpUrl: string }> {
  const [otlpHttp, health] = [await freePort(), await freePort()];
  const pipelines = (options.signals ?? ['logs', 'traces'])
    .map((signal) => `    ${signal}:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp_http/target]`)
    .join('\n');
  const config = `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlpHttp}
processors:
  batch: ${options.batchYaml ?? '{}'}
exporters:
  otlp_http/target:
    endpoint: ${targetUrl}
${options.exporterYaml ?? ''}
extensions:
  health_check:
    endpoint: 127.0.0.1:${health}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
${pipelines}
`;
  const collector = await startCollector(config, { readyUrl: `http://127.0.0.1:${health}/` });
  return { collector, otlpUrl: `http://127.0.0.1:${otlpHttp}` };
}

/**
 * Run `otelcol-runtel --config <file>` with the caller's config (ports already chosen; use 127.0.0.1).
 * Ready when `readyUrl` answers 2xx, else when the collector logs "Everything is ready".
 */
export async function startCollector(configYaml: string, options: CollectorOptions = {}): Promise<CollectorHandle> {
  const bin = requireBinary('otelcol-runtel');
  const dir = makeTempDir('otelcol');
  const configPath = join(dir, 'config.yaml');
  const logFile = join(dir, 'otelcol.log');
  writeFileSync(configPath, configYaml);
  const timeoutMs = options.timeoutMs ?? 60_000;

  const start = async (): Promise<Proc> => {
    const proc = launch(bin, ['--config', configPath], { logFile, cwd: dir, ...(options.env ? { env: options.env } : {}) });
    const readyUrl = options.readyUrl;
    const probe = readyUrl !== undefined ? () => httpOk(readyUrl) : () => Promise.resolve(readLog(proc).includes('Everything is ready'));
    try {
      await waitUntil(proc, 'otelcol-runtel', probe, timeoutMs);
    } catch (err) {
      await terminate(proc, 2_000);
      throw err;
    }
    return proc;
  };

  let current: Proc;
  try {
    current = await start();
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
  return {
    get pid() {
      return current.child.pid!;
    },
    configPath,
    logFile,
    logs: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      await terminate(current);
      removeTempDir(dir);
    },
    async restart() {
      await terminate(current);
      current = await start();
    },
  };
}

// ---- Prometheus ----------------------------------------------------------------------------

export interface PrometheusOptions {
  /** `host:port` (scraped at /metrics) or a full URL such as `http://127.0.0.1:9464/metrics`. */
  scrapeTargets: string[];
  /** Scrape and evaluation interval, default 1 s. */
  scrapeIntervalSeconds?: number;
  /** Job label of the scraped series, default "runtel". */
  jobName?: string;
  /** Also accept pushes on /api/v1/write. */
  remoteWriteReceiver?: boolean;
  timeoutMs?: number;
}

export interface PrometheusHandle {
  /** Base URL (/api/v1/query, /-/ready, ...). */
  readonly url: string;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

function prometheusConfig(targets: string[], interval: number, job: string): string {
  const plain: string[] = [];
  const jobs: string[] = [];
  targets.forEach((t, i) => {
    if (!t.includes('://')) {
      plain.push(t);
      return;
    }
    const u = new URL(t);
    jobs.push(
      `  - job_name: ${JSON.stringify(`${job}-${i}`)}\n    scheme: ${u.protocol.replace(':', '')}\n` +
        `    metrics_path: ${JSON.stringify(u.pathname === '/' ? '/metrics' : u.pathname)}\n` +
        `    static_configs:\n      - targets: [${JSON.stringify(u.host)}]\n`,
    );
  });
  if (plain.length > 0 || jobs.length === 0) {
    jobs.unshift(`  - job_name: ${JSON.stringify(job)}\n    static_configs:\n      - targets: [${plain.map((t) => JSON.stringify(t)).join(', ')}]\n`);
  }
  return `# written by test/services
global:
  scrape_interval: ${interval}s
  scrape_timeout: ${interval}s
  evaluation_interval: ${interval}s
scrape_configs:
${jobs.join('')}`;
}

/** Prometheus with its own config and data dir, on a free loopback port. */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusHandle> {
  const bin = requireBinary('prometheus');
  const interval = options.scrapeIntervalSeconds ?? 1;
  return withPortRetry(async () => {
    const port = await freePort();
    const dir = makeTempDir('prometheus');
    const configPath = join(dir, 'prometheus.yml');
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    writeFileSync(configPath, prometheusConfig(options.scrapeTargets, interval, options.jobName ?? 'runtel'));
    const args = [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${dataDir}`,
      `--web.listen-address=${HOST}:${port}`,
      '--log.level=info',
    ];
    if (options.remoteWriteReceiver) args.push('--web.enable-remote-write-receiver');
    const proc = launch(bin, args, { logFile: join(dir, 'prometheus.log'), cwd: dir });
    const url = `http://${HOST}:${port}`;
    try {
      await waitUntil(proc, 'prometheus', () => httpOk(`${url}/-/ready`), options.timeoutMs ?? 60_000);
    } catch (err) {
      await terminate(proc, 2_000);
      removeTempDir(dir);
      throw err;
    }
    return {
      url,
      pid: proc.child.pid!,
      logFile: proc.logFile,
      async stop() {
        await terminate(proc);
        removeTempDir(dir);
      },
    };
  });
}

// ---- PostgreSQL ----------------------------------------------------------------------------

export interface PostgresHandle {
  /** `postgresql://runtel:<password>@127.0.0.1:<port>/<database>` (SQLAlchemy's and MLflow's form). */
  readonly url: string;
  readonly port: number;
  readonly database: string;
  readonly pid: number;
  readonly logFile: string;
  /** Runs one SQL statement with psql; resolves to its unaligned, tuples-only output. */
  sql(statement: string): Promise<string>;
  stop(): Promise<void>;
}

/** The account clusters run as when the tests run as root (PostgreSQL refuses root): the Debian package's `postgres`. */
function postgresAccount(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) {
    throw new Error("runtel test services: running as root, but there is no 'postgres' user to run PostgreSQL as. Run `bash scripts/provision.sh postgres`.");
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string; timeoutMs?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        env: { ...process.env, ...opts.env },
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
        ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${cmd} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

const POSTGRES_USER = 'runtel';

/**
 * A throwaway PostgreSQL cluster: `initdb` in a temp dir, the server on a free loopback port (TCP
 * only, no Unix socket), password authentication, and one database made for the caller. Run as the
 * `postgres` account when the tests run as root. Settings for speed that only a throwaway cluster
 * may have: `fsync=off` (a crash of the machine could lose it; nothing else changes).
 */
export async function startPostgres(options: { database?: string; timeoutMs?: number } = {}): Promise<PostgresHandle> {
  // The links' targets: the account they run as may not reach the cache dir (under /root).
  const initdb = realpathSync(requireBinary('initdb'));
  const postgres = realpathSync(requireBinary('postgres'));
  const psql = requireBinary('psql');
  const account = postgresAccount();
  const database = options.database ?? 'mlflow';
  const password = `runtel-${Math.random().toString(36).slice(2)}`;
  const dir = makeTempDir('postgres');
  const dataDir = join(dir, 'data');
  const pwFile = join(dir, 'password');
  writeFileSync(pwFile, `${password}\n`);
  if (account !== undefined) {
    chownSync(dir, account.uid, account.gid);
    chownSync(pwFile, account.uid, account.gid);
  }
  chmodSync(pwFile, 0o600);
  const asAccount = account ?? {};
  const env = { LC_ALL: 'C', LANG: 'C' };
  try {
    await run(initdb, ['-D', dataDir, '-U', POSTGRES_USER, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'], {
      ...asAccount,
      cwd: dir,
      env,
    });
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
  const logFile = join(dir, 'postgres.log');
  const psqlEnv = { PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' };
  let port = 0;
  const sql = (statement: string, db = database): Promise<string> =>
    run(psql, ['-h', HOST, '-p', String(port), '-U', POSTGRES_USER, '-d', db, '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-A', '-t', '-c', statement], { env: psqlEnv, timeoutMs: 30_000 });

  let proc: Proc;
  try {
    proc = await withPortRetry(async () => {
      port = await freePort();
      const p = launch(
        postgres,
        [
          '-D',
          dataDir,
          '-h',
          HOST,
          '-p',
          String(port),
          '-c',
          'unix_socket_directories=',
          '-c',
          'fsync=off',
          // Dynamic shared memory in the data dir, so a killed cluster leaves nothing in /dev/shm.
          '-c',
          'dynamic_shared_memory_type=mmap',
          '-c',
          'max_connections=200',
        ],
        { logFile, cwd: dir, env, ...asAccount },
      );
      try {
        await waitUntil(p, 'postgres', async () => (await sql('SELECT 1', 'postgres')).trim() === '1', options.timeoutMs ?? 60_000);
      } catch (err) {
        await terminate(p, 2_000);
        throw err;
      }
      return p;
    });
    await sql(`CREATE DATABASE ${database}`, 'postgres');
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
  return {
    url: `postgresql://${POSTGRES_USER}:${password}@${HOST}:${port}/${database}`,
    port,
    database,
    pid: proc.child.pid!,
    logFile,
    sql: (statement) => sql(statement),
    async stop() {
      // SIGINT to the postmaster: a fast shutdown (SIGTERM would wait for every client to leave).
      if (proc.exited === undefined) {
        proc.child.kill('SIGINT');
        await Promise.race([proc.exitPromise, sleep(10_000)]);
      }
      await terminate(proc);
      removeTempDir(dir);
    },
  };
}

// ---- MLflow --------------------------------------------------------------------------------

/** Where an MLflow server keeps runs: a SQLite file, or a PostgreSQL database (what shared servers run). */
export type MlflowStore = 'sqlite' | 'postgres';

/** Both stores, for the tests whose assertions depend on the store. */
export const MLFLOW_STORES: readonly MlflowStore[] = ['sqlite', 'postgres'];

export interface MlflowHandle {
  /** Tracking server base URL (/health, /api/2.0/mlflow/...). */
  readonly url: string;
  readonly port: number;
  /** pid of the current server process (changes on restart). */
  readonly pid: number;
  readonly store: MlflowStore;
  readonly backendStoreUri: string;
  /** The PostgreSQL cluster behind it (store 'postgres'); it stays up across restart() and stopFor(). */
  readonly postgres: PostgresHandle | undefined;
  readonly logFile: string;
  stop(): Promise<void>;
  /** Stop, then start again on the same port with the same store (an outage and a recovery). */
  restart(): Promise<void>;
  /** Stop the server, await `during` (the outage), then start it again on the same port and store. */
  stopFor(during: () => Promise<void>): Promise<void>;
}

export interface MlflowOptions {
  /** Default 'sqlite' (a file in the server's temp dir); 'postgres' starts a cluster of its own (startPostgres). */
  store?: MlflowStore;
  /** `mlflow server --workers`. Default 1. */
  workers?: number;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  basicAuth?: boolean;
}

/** The admin account `startMlflow({ basicAuth: true })` bootstraps (MLflow ships no default password). */
export const MLFLOW_ADMIN = { username: 'admin', password: 'runtel-Test-admin-8342' } as const;

/** MLflow tracking server on a free loopback port with a temp store (SQLite or PostgreSQL) and artifact dir. */
export async function startMlflow(options: MlflowOptions = {}): Promise<MlflowHandle> {
  const bin = requireBinary('mlflow');
  const timeoutMs = options.timeoutMs ?? 180_000;
  const store = options.store ?? 'sqlite';
  const workers = options.workers ?? 1;
  if (!Number.isSafeInteger(workers) || workers < 1) throw new RangeError(`startMlflow: workers must be a positive integer, got ${workers}`);
  const dir = makeTempDir('mlflow');
  let postgres: PostgresHandle | undefined;
  if (store === 'postgres') {
    try {
      postgres = await startPostgres({ database: 'mlflow' });
    } catch (err) {
      removeTempDir(dir);
      throw err;
    }
  }
  const backendStoreUri = postgres !== undefined ? postgres.url : `sqlite:///${join(dir, 'mlflow.db')}`;
  const artifacts = join(dir, 'artifacts');
  mkdirSync(artifacts);
  const logFile = join(dir, 'mlflow.log');

  const start = async (port: number): Promise<Proc> => {
    const args = [
      'server',
      '--host',
      HOST,
      '--port',
      String(port),
      '--backend-store-uri',
      backendStoreUri,
      '--artifacts-destination',
      artifacts,
      '--workers',
      String(workers),
      ...(options.basicAuth === true ? ['--app-name', 'basic-auth'] : []),
    ];
    const proc = launch(bin, args, {
      logFile,
      cwd: dir,
      env: {
        MLFLOW_DISABLE_TELEMETRY: 'true',
        DO_NOT_TRACK: 'true',
        PYTHONUNBUFFERED: '1',
        // MLflow 3.x otherwise starts a job runner with ~7 huey consumer processes (GenAI jobs we
        // do not use); on 2 cores that roughly doubles the start time.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false',
        // The basic-auth app signs its CSRF tokens with this; any fixed value will do for tests.
        ...(options.basicAuth === true ? { MLFLOW_FLASK_SERVER_SECRET_KEY: 'runtel-tests', MLFLOW_AUTH_ADMIN_PASSWORD: MLFLOW_ADMIN.password } : {}),
        ...options.env,
      },
    });
    try {
      await waitUntil(proc, 'mlflow server', () => httpOk(`http://${HOST}:${port}/health`), timeoutMs);
    } catch (err) {
      await terminate(proc, 2_000);
      throw err;
    }
    return proc;
  };

  let port = 0;
  let current: Proc;
  try {
    current = await withPortRetry(async () => {
      port = await freePort();
      return start(port);
    });
  } catch (err) {
    await postgres?.stop();
    removeTempDir(dir);
    throw err;
  }
  const url = `http://${HOST}:${port}`;
  return {
    url,
    port,
    get pid() {
      return current.child.pid!;
    },
    store,
    backendStoreUri,
    postgres,
    logFile,
    async stop() {
      await terminate(current);
      await postgres?.stop();
      removeTempDir(dir);
    },
    restart: async () => {
      await terminate(current);
      await startAgain();
    },
    stopFor: async (during: () => Promise<void>) => {
      await terminate(current);
      try {
        await during();
      } finally {
        await startAgain();
      }
    },
  };

  async function startAgain(): Promise<void> {
    // The old server's socket may linger for a moment: retry the same port briefly.
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        current = await start(port);
        return;
      } catch (err) {
        if (!(err instanceof StartError && err.addressInUse) || Date.now() > deadline) throw err;
        await sleep(500);
      }
    }
  }
}
