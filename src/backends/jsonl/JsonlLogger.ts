// The local run log: an append-only JSONL file per run, written in batches (no per-point fsync),
// fsynced when the run finishes. Artifacts are copied into the run folder. A run's start records
// the process that writes it, and a run with nothing written for a heartbeat interval gets a
// heartbeat line, so readers can tell a quiet run from one whose process died (see liveness.ts).

import { appendFile, cp, mkdir, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { RunBackend } from '../../core/RunBackend.js';
import type { RunEvent } from '../../core/events.js';
import type { RunRecord } from '../../core/RunRecord.js';
import { BackendLogger } from '../../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../../core/BackendLogger.js';
import { getStringFromEnv } from '../../core/env.js';
import { heartbeatInterval, processIdentity } from '../../core/liveness.js';
import { applyEvent } from '../../core/RunRecord.js';
import { decodeLine, encodeEvent, encodeHeartbeat, encodeLink, encodeStart } from './codec.js';
import { onRunLink } from '../../core/runLinks.js';
import type { RunLink } from '../../core/runLinks.js';
import { ARTIFACTS_DIR, EVENTS_FILE, readRun, runDir } from './store.js';

export interface JsonlLoggerOptions extends BackendLoggerOptions {
  /** Store folder. Default: env `RUNTEL_DIR`, else `./runtel-runs`. */
  dir?: string;
  /** Buffered lines are written at least this often. Default 200. */
  flushIntervalMillis?: number;
  /** A run's buffer is written as soon as it holds this many characters. Default 1 MiB. */
  maxBufferChars?: number;
  /**
   * A running run with nothing written for this long gets a heartbeat line (for readers on other
   * hosts of a shared file system; on the writer's host the process itself is checked). Default: env
   * `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000.
   */
  heartbeatIntervalMillis?: number;
}

interface RunFile {
  dir: string;
  lines: string[];
  chars: number;
  /** Every write for this run goes through this chain, so lines stay in order. */
  chain: Promise<void>;
  handle: FileHandle | undefined;
  finished: boolean;
  /** When lines were last handed to the file (the heartbeat timer reads it). */
  lastWriteAt: number;
}

const MAX_ENDED_RUNS = 1000;

export function defaultStoreDir(): string {
  return resolve(getStringFromEnv('RUNTEL_DIR') ?? 'runtel-runs');
}

export class JsonlBackend implements RunBackend {
  readonly name = 'jsonl';
  readonly shutsDownLast = true;
  readonly dir: string;
  private readonly _files = new Map<string, RunFile>();
  private readonly _flushIntervalMillis: number;
  private readonly _maxBufferChars: number;
  private readonly _heartbeatMillis: number;
  private _timer: NodeJS.Timeout | undefined;
  private _heartbeatTimer: NodeJS.Timeout | undefined;
  private _errors: unknown[] = [];
  private _unsubscribeLinks: (() => void) | undefined;
  /** Runs that finished lately, whose links may still come (a target creates its run asynchronously). */
  private readonly _ended = new Set<string>();
  private readonly _lateWrites = new Set<Promise<void>>();

  constructor(options: JsonlLoggerOptions = {}) {
    this.dir = options.dir === undefined ? defaultStoreDir() : resolve(options.dir);
    this._flushIntervalMillis = options.flushIntervalMillis ?? 200;
    this._maxBufferChars = options.maxBufferChars ?? 1 << 20;
    if (!(this._flushIntervalMillis > 0)) throw new RangeError('flushIntervalMillis must be greater than 0');
    this._heartbeatMillis = heartbeatInterval(options.heartbeatIntervalMillis);
  }

  onEvent(event: RunEvent): void {
    let file = this._files.get(event.runId);
    if (file === undefined) {
      file = { dir: runDir(this.dir, event.runId), lines: [], chars: 0, chain: Promise.resolve(), handle: undefined, finished: false, lastWriteAt: Date.now() };
      const dir = file.dir;
      file.chain = mkdir(dir, { recursive: true }).then(() => undefined);
      this._files.set(event.runId, file);
    }
    if (event.type === 'artifact') {
      this._writeBuffered(file);
      const target = join(file.dir, ARTIFACTS_DIR, event.name);
      const source = event.path;
      this._enqueue(file, () => cp(source, target, { recursive: true, force: true }));
    }
    const line = event.type === 'run_started' ? encodeStart(event, processIdentity()) : encodeEvent(event);
    if (event.type === 'run_started') {
      this._ensureHeartbeats();
      this._unsubscribeLinks ??= onRunLink((link) => this._link(link));
    }
    file.lines.push(line);
    file.chars += line.length + 1;
    if (event.type === 'run_finished') {
      file.finished = true;
      this._ended.add(event.runId);
      if (this._ended.size > MAX_ENDED_RUNS) this._ended.delete(this._ended.values().next().value!);
      this._writeBuffered(file);
      const done = file;
      this._enqueue(done, async () => {
        if (done.handle !== undefined) {
          await done.handle.sync();
          await done.handle.close();
          done.handle = undefined;
        }
      });
      return;
    }
    if (file.chars >= this._maxBufferChars) this._writeBuffered(file);
    else this._timer ??= setTimeout(() => this._flushAll(), this._flushIntervalMillis);
  }

  resume(runId: string): RunRecord | undefined {
    const stored = readRun(runDir(this.dir, runId));
    let record = stored?.record;
    for (const line of this._files.get(runId)?.lines ?? []) {
      const decoded = decodeLine(line, runId);
      if (decoded.kind === 'event') record = applyEvent(record, decoded.event);
    }
    return record;
  }

  async forceFlush(): Promise<void> {
    this._flushAll();
    await Promise.all([...this._files.values()].map((f) => f.chain));
    await Promise.all(this._lateWrites);
    if (this._errors.length > 0) {
      const errors = this._errors;
      this._errors = [];
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} writes to ${this.dir} failed`);
    }
  }

  async shutdown(): Promise<void> {
    this._unsubscribeLinks?.();
    this._unsubscribeLinks = undefined;
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = undefined;
    await this.forceFlush();
    await Promise.all(
      [...this._files.values()].map(async (f) => {
        await f.handle?.close();
        f.handle = undefined;
      }),
    );
    this._files.clear();
  }

  private _flushAll(): void {
    clearTimeout(this._timer);
    this._timer = undefined;
    for (const file of this._files.values()) this._writeBuffered(file);
  }

  /** One timer for every run, looking every quarter interval; never keeps the process alive. */
  private _ensureHeartbeats(): void {
    if (this._heartbeatTimer !== undefined || !Number.isFinite(this._heartbeatMillis)) return;
    this._heartbeatTimer = setInterval(() => this._beat(), Math.max(1, this._heartbeatMillis / 4));
    this._heartbeatTimer.unref();
  }

  /** A tracker's page for a run goes into its log (for `runtel show`), also when it comes after the run ended. */
  private _link(link: RunLink): void {
    const file = this._files.get(link.runId);
    const line = encodeLink(link.label, link.url);
    if (file !== undefined && !file.finished) {
      file.lines.push(line);
      file.chars += line.length + 1;
      this._timer ??= setTimeout(() => this._flushAll(), this._flushIntervalMillis);
      return;
    }
    if (!this._ended.has(link.runId)) return;
    // The run's log is closed (or closing): append on its own; readers take a link line anywhere.
    const path = join(runDir(this.dir, link.runId), EVENTS_FILE);
    const write = (file?.chain ?? Promise.resolve()).then(() => appendFile(path, line + '\n', 'utf8')).catch((error: unknown) => void this._errors.push(error));
    this._lateWrites.add(write);
    void write.finally(() => this._lateWrites.delete(write));
  }

  private _beat(): void {
    const now = Date.now();
    let running = false;
    for (const file of this._files.values()) {
      if (file.finished) continue;
      running = true;
      if (file.lines.length > 0 || now - file.lastWriteAt < this._heartbeatMillis) continue;
      file.lines.push(encodeHeartbeat(now));
      this._writeBuffered(file);
    }
    if (!running) {
      clearInterval(this._heartbeatTimer);
      this._heartbeatTimer = undefined;
    }
  }

  private _writeBuffered(file: RunFile): void {
    if (file.lines.length === 0) return;
    file.lastWriteAt = Date.now();
    const lines = file.lines;
    file.lines = [];
    file.chars = 0;
    const text = lines.join('\n') + '\n';
    this._enqueue(file, async () => {
      file.handle ??= await openForAppend(join(file.dir, EVENTS_FILE));
      try {
        await file.handle.appendFile(text, 'utf8');
      } catch (error) {
        // Keep the lines for the next attempt: nothing the core accepted is dropped.
        file.lines.unshift(...lines);
        file.chars += text.length;
        throw error;
      }
    });
  }

  private _enqueue(file: RunFile, step: () => Promise<unknown>): void {
    const next: Promise<void> = file.chain.then(step).then(
      () => {
        if (file.finished && file.lines.length === 0 && file.chain === next) this._forget(file);
      },
      // The chain goes on after a failure; forceFlush reports it to the logger.
      (error: unknown) => {
        this._errors.push(error);
      },
    );
    file.chain = next;
  }

  private _forget(file: RunFile): void {
    for (const [id, f] of this._files) if (f === file) this._files.delete(id);
  }
}

// A crash can leave a last line cut short. It was never complete, so it is cut off before appending
// (readers skip such a line too); complete lines are never touched.
export async function openForAppend(path: string): Promise<FileHandle> {
  const handle = await open(path, 'a+');
  const { size } = await handle.stat();
  const chunk = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const newline = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (newline !== -1) {
      end = start + newline + 1;
      break;
    }
    end = start;
  }
  if (end < size) await handle.truncate(end);
  return handle;
}

/** Writes each run to `<dir>/<runId>/events.jsonl`; artifacts are copied to `<dir>/<runId>/artifacts/`. */
export class JsonlLogger extends BackendLogger {
  declare readonly backend: JsonlBackend;

  constructor(options: JsonlLoggerOptions = {}) {
    super(new JsonlBackend(options), options);
  }

  /** The store folder. */
  get dir(): string {
    return this.backend.dir;
  }
}
