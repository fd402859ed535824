// The environment contract between a run and the processes it launches (docs/semantic-conventions.md,
// "Runs across processes"): `run.childEnv()` writes it, `startRun` in the child reads it.
// TRACEPARENT / TRACESTATE follow OpenTelemetry's environment-variables-as-carriers convention.

import { hostname } from 'node:os';
import { parseTraceParent } from '@opentelemetry/core';
import { getStringFromEnv } from './env.js';

export const ENV_PARENT_RUN_ID = 'RUNTEL_PARENT_RUN_ID';
export const ENV_PARENT_RUN_NAME = 'RUNTEL_PARENT_RUN_NAME';
export const ENV_EXPERIMENT = 'RUNTEL_EXPERIMENT';
export const ENV_TRACEPARENT = 'TRACEPARENT';
export const ENV_TRACESTATE = 'TRACESTATE';

/** Tags a run started in a launched process of a distributed job carries. */
export const TAG_RANK = 'runtel.rank';
export const TAG_WORLD_SIZE = 'runtel.world_size';
export const TAG_LOCAL_RANK = 'runtel.local_rank';
export const TAG_HOST = 'runtel.host';
/** Set on a run whose parent (from the environment) a backend could not find: the tree can still be rebuilt. */
export const TAG_PARENT_RUN_ID = 'runtel.parent_run_id';

/** The W3C trace context a child's run span continues. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** A parent run named by the environment of this process. */
export interface InheritedParent {
  id: string;
  /** The parent's display name, for default child names. */
  name: string | undefined;
  /** The parent's span, when the launching process had one (and TRACEPARENT is well-formed). */
  trace: TraceCarrier | undefined;
}

export interface ProcessRank {
  rank: number;
  worldSize: number | undefined;
  localRank: number | undefined;
}

const RUN_ID_PATTERN = /^[0-9a-f]{32}$/;
// One warning per bad value per process, however many runs start.
const warned = new Set<string>();

function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`runtel: ${message}\n`);
}

/**
 * The parent run this process's environment names (`RUNTEL_PARENT_RUN_ID`), or undefined. Bad values
 * warn once and are ignored: a malformed TRACEPARENT leaves the run nested by id only, a malformed
 * id leaves it top-level.
 */
export function inheritedParent(): InheritedParent | undefined {
  const raw = getStringFromEnv(ENV_PARENT_RUN_ID);
  if (raw === undefined) return undefined;
  const id = raw.toLowerCase();
  if (!RUN_ID_PATTERN.test(id)) {
    warnOnce(`ignoring ${ENV_PARENT_RUN_ID}=${JSON.stringify(raw)}: a run id is 32 hex characters; the run is top-level`);
    return undefined;
  }
  return { id, name: getStringFromEnv(ENV_PARENT_RUN_NAME), trace: inheritedTrace() };
}

function inheritedTrace(): TraceCarrier | undefined {
  const traceparent = getStringFromEnv(ENV_TRACEPARENT);
  if (traceparent === undefined) return undefined;
  if (parseTraceParent(traceparent) === null) {
    warnOnce(`ignoring ${ENV_TRACEPARENT}=${JSON.stringify(traceparent)}: not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); the run span starts a new trace`);
    return undefined;
  }
  const tracestate = getStringFromEnv(ENV_TRACESTATE);
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}

function rankNumber(name: string): number | undefined {
  const raw = getStringFromEnv(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) {
    warnOnce(`ignoring ${name}=${JSON.stringify(raw)}: not a non-negative integer`);
    return undefined;
  }
  return value;
}

/** This process's rank in a torchrun-style (RANK, WORLD_SIZE, LOCAL_RANK) or SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) launch. */
export function processRank(): ProcessRank | undefined {
  const torch = rankNumber('RANK');
  if (torch !== undefined) return { rank: torch, worldSize: rankNumber('WORLD_SIZE'), localRank: rankNumber('LOCAL_RANK') };
  const slurm = rankNumber('SLURM_PROCID');
  if (slurm !== undefined) return { rank: slurm, worldSize: rankNumber('SLURM_NTASKS'), localRank: rankNumber('SLURM_LOCALID') };
  return undefined;
}

/** The tags a rank carries: rank, world size, local rank and host. */
export function rankTags(rank: ProcessRank): Record<string, string> {
  const tags: Record<string, string> = { [TAG_RANK]: String(rank.rank), [TAG_HOST]: hostname() };
  if (rank.worldSize !== undefined) tags[TAG_WORLD_SIZE] = String(rank.worldSize);
  if (rank.localRank !== undefined) tags[TAG_LOCAL_RANK] = String(rank.localRank);
  return tags;
}

/** A default name for a run started from the environment: the parent's name and the rank (or a short id). */
export function inheritedRunName(id: string, parent: InheritedParent | undefined, rank: ProcessRank | undefined): string {
  const base = parent?.name ?? `run-${id.slice(0, 8)}`;
  if (rank !== undefined) return `${base}-rank${rank.rank}`;
  return parent?.name === undefined ? base : `${base}-${id.slice(0, 8)}`;
}

/**
 * The environment for a process `run` launches. Every key is present: an empty value means "none",
 * so spreading it over `process.env` also clears values this process inherited itself.
 */
export function childEnvOf(run: { id: string; name: string; experiment: string }, trace?: TraceCarrier): Record<string, string> {
  return {
    [ENV_PARENT_RUN_ID]: run.id,
    [ENV_PARENT_RUN_NAME]: run.name,
    [ENV_EXPERIMENT]: run.experiment,
    ...traceEnv(trace),
  };
}

/** TRACEPARENT and TRACESTATE for a span's carrier (empty: none). */
export function traceEnv(trace: TraceCarrier | undefined): Record<string, string> {
  return { [ENV_TRACEPARENT]: trace?.traceparent ?? '', [ENV_TRACESTATE]: trace?.tracestate ?? '' };
}
