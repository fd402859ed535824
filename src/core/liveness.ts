// Liveness: how often a running run shows it is alive (heartbeats), how long a silent run is given
// before it counts as crashed, and who this process is (so a reader on the same host can tell
// exactly whether the process that writes a run is still there). See docs/run-protocol.md.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { getStringFromEnv } from './env.js';

export const HEARTBEAT_ENV = 'RUNTEL_HEARTBEAT_INTERVAL_MILLIS';
export const DEFAULT_HEARTBEAT_INTERVAL_MILLIS = 30_000;
/** A silent run counts as crashed after this many heartbeat intervals, unless told otherwise. */
export const DEFAULT_STALE_HEARTBEATS = 3;
/**
 * The shortest stale-after, in heartbeat intervals. A live run shows itself at least every 1.25
 * intervals (the heartbeat timers look every quarter interval); pipelines add their delays.
 */
export const MIN_STALE_HEARTBEATS = 2;

/**
 * A heartbeat interval: the option if given, else env `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else
 * 30000. Anything but a number greater than 0 is an error naming where it came from (unlike other
 * variables, a bad value is not ignored: a run that never heartbeats would be reaped as crashed).
 */
export function heartbeatInterval(option?: number, optionName = 'heartbeatIntervalMillis'): number {
  if (option !== undefined) return checkInterval(option, optionName);
  const raw = getStringFromEnv(HEARTBEAT_ENV);
  if (raw === undefined) return DEFAULT_HEARTBEAT_INTERVAL_MILLIS;
  return checkInterval(Number(raw), HEARTBEAT_ENV, raw);
}

function checkInterval(value: number, name: string, raw: unknown = value): number {
  if (typeof value !== 'number' || Number.isNaN(value) || !(value > 0)) {
    throw new RangeError(`${name} must be a number of milliseconds greater than 0, got ${JSON.stringify(raw) ?? String(raw)}`);
  }
  return value;
}

/**
 * How long a run may stay silent before it counts as crashed: `value` (from `name`), else
 * `DEFAULT_STALE_HEARTBEATS` heartbeat intervals. It must be at least `MIN_STALE_HEARTBEATS`
 * intervals: a shorter one would call live runs crashed.
 */
export function staleAfter(value: number | undefined, name: string, heartbeatIntervalMillis: number, heartbeatName = HEARTBEAT_ENV): number {
  if (value === undefined) return DEFAULT_STALE_HEARTBEATS * heartbeatIntervalMillis;
  if (typeof value !== 'number' || Number.isNaN(value) || !(value > 0)) {
    throw new RangeError(`${name} must be a number of milliseconds greater than 0, got ${JSON.stringify(value) ?? String(value)}`);
  }
  if (value < MIN_STALE_HEARTBEATS * heartbeatIntervalMillis) {
    throw new RangeError(
      `${name} (${value} ms) is shorter than ${MIN_STALE_HEARTBEATS} heartbeat intervals (${heartbeatName} = ${heartbeatIntervalMillis} ms): ` +
        `live runs that are only quiet would be called crashed; use at least ${MIN_STALE_HEARTBEATS * heartbeatIntervalMillis} ms`,
    );
  }
  return value;
}

/** A stale-after from the environment variable `name` (strict: a value that is not a number is an error naming it). */
export function staleAfterFromEnv(option: number | undefined, optionName: string, envName: string, heartbeatIntervalMillis: number, heartbeatName = HEARTBEAT_ENV): number {
  if (option !== undefined) return staleAfter(option, optionName, heartbeatIntervalMillis, heartbeatName);
  const raw = getStringFromEnv(envName);
  if (raw === undefined) return staleAfter(undefined, envName, heartbeatIntervalMillis, heartbeatName);
  const value = Number(raw);
  if (Number.isNaN(value)) throw new RangeError(`${envName} must be a number of milliseconds greater than 0, got ${JSON.stringify(raw)}`);
  return staleAfter(value, envName, heartbeatIntervalMillis, heartbeatName);
}

/** Who writes a run: enough for a reader on the same host to tell whether that process still exists. */
export interface ProcessIdentity {
  pid: number;
  host: string;
  /** When the process started, in milliseconds since the epoch. */
  startTime: number;
  /** Linux: the kernel's start time of the process (clock ticks since boot), with the boot's id. Together with the pid they name one process exactly. */
  startTicks?: number;
  bootId?: string;
}

let self: ProcessIdentity | undefined;

/** This process. */
export function processIdentity(): ProcessIdentity {
  if (self !== undefined) return self;
  const identity: ProcessIdentity = { pid: process.pid, host: hostname(), startTime: Math.round(performance.timeOrigin) };
  const ticks = startTicksOf(process.pid);
  const bootId = currentBootId();
  if (ticks !== undefined && bootId !== undefined) {
    identity.startTicks = ticks;
    identity.bootId = bootId;
  }
  self = identity;
  return identity;
}

export type ProcessState = 'alive' | 'gone' | 'unknown';

/**
 * Whether the process `who` names is still running, seen from this process: `unknown` on another
 * host (use heartbeats then). On Linux the pid's kernel start time must match too, so a reused pid
 * is not mistaken for the writer; elsewhere a live pid counts as the writer.
 */
export function processState(who: ProcessIdentity, localHost = hostname()): ProcessState {
  if (who.host !== localHost) return 'unknown';
  if (who.bootId !== undefined && who.startTicks !== undefined) {
    const bootId = currentBootId();
    if (bootId !== undefined) {
      if (bootId !== who.bootId) return 'gone';
      const ticks = startTicksOf(who.pid);
      if (ticks === undefined) return 'gone';
      return ticks === who.startTicks ? (isZombie(who.pid) ? 'gone' : 'alive') : 'gone';
    }
  }
  try {
    process.kill(who.pid, 0);
    return 'alive';
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? 'alive' : 'gone';
  }
}

function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function startTicksOf(pid: number): number | undefined {
  const fields = statFields(pid);
  const ticks = fields === undefined ? NaN : Number(fields[19]);
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

/** A process that exited but was not reaped by its parent yet: dead for our purposes. */
function isZombie(pid: number): boolean {
  return statFields(pid)?.[0] === 'Z';
}

/** The fields of /proc/<pid>/stat after the command name: state is [0], starttime [19]. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  return close === -1 ? undefined : stat.slice(close + 2).split(' ');
}
