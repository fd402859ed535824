// Runs on the terminal, for humans watching it. Compact by default: a line when a run starts, at most
// one progress line per run every few seconds (step, rate, latest values) and a line when it ends.
// Verbose: one line per event (every metrics call, param, tag and artifact).

import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { getNumberFromEnv, getStringFromEnv } from '../core/env.js';
import { formatBytes, formatDuration, formatNumber } from '../core/format.js';
import { onRunLink } from '../core/runLinks.js';
import type { RunLink } from '../core/runLinks.js';

/** `'compact'`: start, progress every few seconds, end. `'verbose'`: one line per event. */
export type ConsoleMode = 'compact' | 'verbose';

export interface ConsoleBackendOptions {
  /** Where lines go. Default: standard error, so a program's standard output stays its own. */
  write?: (line: string) => void;
  /** Default: env `RUNTEL_CONSOLE` (`compact` or `verbose`), else `'compact'`. */
  mode?: ConsoleMode;
  /** Compact mode: at most one progress line per run this often. Default: env `RUNTEL_CONSOLE_INTERVAL_MILLIS`, else 5000. */
  intervalMillis?: number;
}

export interface ConsoleLoggerOptions extends BackendLoggerOptions, ConsoleBackendOptions {}

/** Ended runs remembered for links that come after their end. */
const MAX_ENDED_RUNS = 256;

/** Metric keys shown on a compact line; the rest are counted. */
const MAX_KEYS_SHOWN = 6;

interface RunState {
  name: string;
  /** Start time from the event; wall clock (`Date.now()`) for the progress schedule. */
  start: number;
  lastLineAt: number;
  lastLineStep: number;
  maxStep: number;
  latest: Map<string, { step: number; value: number }>;
  artifacts: number;
  /** Where the run can be seen, by tracker, as its targets reported. */
  links: Map<string, string>;
}

function modeFromEnv(): ConsoleMode | undefined {
  const raw = getStringFromEnv('RUNTEL_CONSOLE')?.toLowerCase();
  if (raw === undefined) return undefined;
  if (raw === 'compact' || raw === 'verbose') return raw;
  process.stderr.write(`runtel: ignoring RUNTEL_CONSOLE=${JSON.stringify(raw)}: expected compact or verbose\n`);
  return undefined;
}

export class ConsoleBackend implements RunBackend {
  readonly name = 'console';
  readonly shutsDownLast = true;
  readonly mode: ConsoleMode;
  private readonly _write: (line: string) => void;
  private readonly _intervalMillis: number;
  private readonly _runs = new Map<string, RunState>();
  private _unsubscribeLinks: (() => void) | undefined;
  /** Names of runs that ended lately: a target may create its run (and publish its page) only after. */
  private readonly _ended = new Map<string, string>();

  /** `options` may also be the `write` function alone. */
  constructor(options: ConsoleBackendOptions | ((line: string) => void) = {}) {
    const o = typeof options === 'function' ? { write: options } : options;
    this._write = o.write ?? ((line) => process.stderr.write(line + '\n'));
    const mode = o.mode ?? modeFromEnv() ?? 'compact';
    if (mode !== 'compact' && mode !== 'verbose') throw new TypeError(`console mode must be 'compact' or 'verbose', got ${JSON.stringify(mode)}`);
    this.mode = mode;
    this._intervalMillis = o.intervalMillis ?? getNumberFromEnv('RUNTEL_CONSOLE_INTERVAL_MILLIS') ?? 5000;
    if (!(this._intervalMillis >= 0)) throw new RangeError('intervalMillis must be 0 or more');
  }

  onEvent(event: RunEvent): void {
    const line = this.format(event);
    if (line !== undefined) this._write(line);
  }

  /** The line printed for `event`, if any (in compact mode most events only update the run's state). */
  format(event: RunEvent): string | undefined {
    const known = this._runs.get(event.runId);
    const name = known?.name ?? event.runId.slice(0, 8);
    const verbose = this.mode === 'verbose';
    switch (event.type) {
      case 'run_started': {
        const now = Date.now();
        this._runs.set(event.runId, {
          name: event.name,
          start: event.startTime,
          lastLineAt: now,
          lastLineStep: -1,
          maxStep: -1,
          latest: new Map(),
          artifacts: 0,
          links: new Map(),
        });
        this._unsubscribeLinks ??= onRunLink((link) => this._link(link));
        const where = [`id ${event.runId.slice(0, 8)}`, `experiment ${event.experiment}`];
        if (event.parentId !== undefined) where.push(`parent ${event.parentId.slice(0, 8)}`);
        const params = pairs(event.params);
        return `[runtel] ▶ ${event.name} ${event.resumed === true ? 'resumed' : 'started'} (${where.join(', ')})${params ? ` ${params}` : ''}`;
      }
      case 'params':
        return verbose ? `[runtel]   ${name} params ${pairs(event.params)}` : undefined;
      case 'tags':
        return verbose ? `[runtel]   ${name} tags ${pairs(event.tags)}` : undefined;
      case 'metrics': {
        if (known !== undefined) {
          for (const key in event.values) {
            const latest = known.latest.get(key);
            if (latest === undefined || event.step >= latest.step) known.latest.set(key, { step: event.step, value: event.values[key]! });
          }
          if (event.step > known.maxStep) known.maxStep = event.step;
        }
        if (verbose) {
          const values = Object.entries(event.values).map(([k, v]) => `${k}=${formatNumber(v)}`);
          return `[runtel]   ${name} step ${event.step} ${values.join(' ')}`;
        }
        if (known === undefined) return undefined;
        const now = Date.now();
        if (now - known.lastLineAt < this._intervalMillis) return undefined;
        const rate = ((known.maxStep - known.lastLineStep) * 1000) / Math.max(1, now - known.lastLineAt);
        known.lastLineAt = now;
        known.lastLineStep = known.maxStep;
        return `[runtel]   ${name} step ${known.maxStep} (${formatNumber(rate)} steps/s) ${latestValues(known)}`;
      }
      case 'artifact':
        if (known !== undefined) known.artifacts++;
        return verbose ? `[runtel]   ${name} artifact ${event.name} (${event.kind}, ${formatBytes(event.size)})` : undefined;
      case 'run_finished': {
        this._runs.delete(event.runId);
        this._ended.set(event.runId, name);
        if (this._ended.size > MAX_ENDED_RUNS) this._ended.delete(this._ended.keys().next().value!);
        const parts: string[] = [];
        if (known !== undefined) {
          parts.push(`in ${formatDuration(event.endTime - known.start)}`);
          if (!verbose && known.maxStep >= 0) parts.push(`step ${known.maxStep}`, latestValues(known));
          if (!verbose && known.artifacts > 0) parts.push(`${known.artifacts} artifact${known.artifacts === 1 ? '' : 's'}`);
        }
        const mark = event.status === 'success' ? '■' : '✗';
        const why = event.error === undefined ? '' : `: ${event.error.type}: ${event.error.message}`;
        const links = known === undefined ? '' : [...known.links].map(([label, url]) => ` · ${label} ${url}`).join('');
        return `[runtel] ${mark} ${name} ${event.status}${parts.length > 0 ? ` ${parts.join(', ')}` : ''}${why}${links}`;
      }
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this._unsubscribeLinks?.();
    this._unsubscribeLinks = undefined;
    return Promise.resolve();
  }

  /** A tracker's page for a run: printed when it is known (the run is created there asynchronously), and on the end line if known by then. */
  private _link(link: RunLink): void {
    const run = this._runs.get(link.runId);
    if (run === undefined) {
      const ended = this._ended.get(link.runId);
      if (ended !== undefined) this._write(`[runtel]   ${ended} in ${link.label}: ${link.url}`);
      return;
    }
    if (run.links.get(link.label) === link.url) return;
    run.links.set(link.label, link.url);
    this._write(`[runtel]   ${run.name} in ${link.label}: ${link.url}`);
  }
}

function latestValues(run: RunState): string {
  const entries = [...run.latest];
  const shown = entries.slice(0, MAX_KEYS_SHOWN).map(([k, { value }]) => `${k}=${formatNumber(value)}`);
  if (entries.length > MAX_KEYS_SHOWN) shown.push(`(+${entries.length - MAX_KEYS_SHOWN} more)`);
  return shown.join(' ');
}

function pairs(record: Record<string, string>): string {
  return Object.entries(record)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/**
 * Runs on standard error. Compact by default: one line when a run starts, at most one progress line
 * per run every `intervalMillis` (its step, steps per second and latest values) and one when it
 * ends; `mode: 'verbose'` (or `RUNTEL_CONSOLE=verbose`) prints every event.
 */
export class ConsoleLogger extends BackendLogger {
  declare readonly backend: ConsoleBackend;

  constructor(options: ConsoleLoggerOptions = {}) {
    super(new ConsoleBackend(options), options);
  }
}
