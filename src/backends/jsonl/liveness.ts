// Whether a run the store shows `running` is still running. On the writer's host the process is
// checked (pid plus its kernel start time, so a reused pid does not count): a run whose process is
// gone is `crashed` at once, even if it wrote nothing for a while. Elsewhere (a store on a shared
// file system, or a run written by a runtel that did not record its process) the run is `crashed`
// when nothing, not even a heartbeat line, was written for `staleAfterMillis`.

import { hostname } from 'node:os';
import type { RunFinishedEvent } from '../../core/events.js';
import { applyEvent } from '../../core/RunRecord.js';
import { processState } from '../../core/liveness.js';
import type { StoredRun } from './store.js';

export interface Liveness {
  /** `running`, or `crashed` with why and when the run was last alive. */
  state: 'running' | 'crashed';
  /** For a crashed run: what shows it, in words. */
  reason?: string;
  /** The last sign of life: the latest write, heartbeat or event time. */
  lastSign: number;
}

export interface LivenessOptions {
  /** How long a run nobody can check may stay silent. */
  staleAfterMillis: number;
  now?: number;
  /** This host's name (tests pretend to be elsewhere). */
  host?: string;
}

/** The liveness of a run the store has as `running`; undefined for a run that finished. */
export function liveness(run: StoredRun, options: LivenessOptions): Liveness | undefined {
  if (run.record.status !== 'running') return undefined;
  const now = options.now ?? Date.now();
  const lastSign = lastSignOf(run);
  const who = run.process;
  const state = who === undefined ? 'unknown' : processState(who, options.host ?? hostname());
  if (state === 'alive') return { state: 'running', lastSign };
  if (state === 'gone') return { state: 'crashed', reason: `process ${who!.pid} on ${who!.host} ended without finishing the run`, lastSign };
  const silent = now - lastSign;
  if (silent < options.staleAfterMillis) return { state: 'running', lastSign };
  const writer = who === undefined ? 'its writer recorded no process' : `process ${who.pid} on ${who.host}, which this host cannot check`;
  return { state: 'crashed', reason: `nothing written for ${Math.round(silent / 1000)} s, not even a heartbeat (${writer})`, lastSign };
}

/** The run_finished `crashed` a crashed run lacks: at its last sign of life. */
export function crashedFinish(run: StoredRun, alive: Liveness): RunFinishedEvent {
  return {
    type: 'run_finished',
    runId: run.record.id,
    endTime: Math.max(run.record.startTime, Math.floor(alive.lastSign)),
    status: 'crashed',
    error: { type: 'Crashed', message: alive.reason ?? 'the run was not finished' },
  };
}

/**
 * The run as readers should show it: a crashed run gets the finish it lacks (in memory only; the
 * store is unchanged). Finished and live runs are returned as they are.
 */
export function withLiveness(run: StoredRun, options: LivenessOptions): StoredRun {
  const alive = liveness(run, options);
  if (alive?.state !== 'crashed') return run;
  const finish = crashedFinish(run, alive);
  const record = applyEvent(structuredClone(run.record), finish);
  return { ...run, record, events: [...run.events, finish] };
}

function lastSignOf(run: StoredRun): number {
  let last = Math.max(run.record.startTime, run.lastHeartbeat ?? 0, run.lastWrite ?? 0);
  for (const event of run.events) {
    const time = event.type === 'metrics' ? undefined : event.type === 'system_metrics' ? event.timestamp : event.type === 'run_started' ? event.startTime : event.type === 'run_finished' ? event.endTime : event.time;
    // Metric timestamps are the caller's (possibly in the past): not a sign of when the writer was alive.
    if (time !== undefined && time > last) last = time;
  }
  return last;
}
