// Reading the JSONL store: `<dir>/<runId>/events.jsonl` plus `<dir>/<runId>/artifacts/`.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../../core/events.js';
import type { ProcessIdentity } from '../../core/liveness.js';
import { applyEvent } from '../../core/RunRecord.js';
import type { RunRecord } from '../../core/RunRecord.js';
import { decodeLine } from './codec.js';

export const EVENTS_FILE = 'events.jsonl';
export const ARTIFACTS_DIR = 'artifacts';

export interface StoredRun {
  record: RunRecord;
  events: RunEvent[];
  /** The run's folder. */
  dir: string;
  /** A last line cut short by a crash mid-write is skipped and counted here. */
  truncatedLines: number;
  /** The process that writes the run (its latest start or resume), when the writer recorded it. */
  process?: ProcessIdentity;
  /** The latest heartbeat line's time. */
  lastHeartbeat?: number;
  /** Where the run can be seen, by tracker (`MLflow`, `W&B`), as its targets reported. */
  links: Record<string, string>;
  /** When the event log was last written (its modification time), in milliseconds since the epoch. */
  lastWrite?: number;
}

export function runDir(storeDir: string, runId: string): string {
  return join(storeDir, runId);
}

/** Reads one run's events; undefined when the folder has no event log. */
export function readRun(dir: string): StoredRun | undefined {
  const file = join(dir, EVENTS_FILE);
  if (!existsSync(file)) return undefined;
  const lastWrite = statSync(file).mtimeMs;
  const run = parseRunLog(readFileSync(file, 'utf8'), dir);
  if (run !== undefined) run.lastWrite = lastWrite;
  return run;
}

export function parseRunLog(text: string, dir: string): StoredRun | undefined {
  const lines = text.split('\n');
  let lastLine = lines.length - 1;
  while (lastLine > 0 && lines[lastLine] === '') lastLine--;
  const events: RunEvent[] = [];
  let record: RunRecord | undefined;
  let truncatedLines = 0;
  let process: ProcessIdentity | undefined;
  let lastHeartbeat: number | undefined;
  const links: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    let event: RunEvent;
    try {
      const decoded = decodeLine(line, record?.id);
      if (decoded.kind === 'heartbeat') {
        lastHeartbeat = Math.max(lastHeartbeat ?? 0, decoded.time);
        continue;
      }
      if (decoded.kind === 'link') {
        links[decoded.label] = decoded.url;
        continue;
      }
      event = decoded.event;
      if (decoded.process !== undefined) process = decoded.process;
    } catch (error) {
      // Only the final line can be cut short by a crash; anything else is corruption.
      if (i === lastLine) {
        truncatedLines++;
        continue;
      }
      throw new Error(`${join(dir, EVENTS_FILE)}:${i + 1}: ${(error as Error).message}`);
    }
    events.push(event);
    record = applyEvent(record, event);
  }
  if (record === undefined) return undefined;
  for (const artifact of record.artifacts) artifact.path = join(dir, ARTIFACTS_DIR, artifact.name);
  const run: StoredRun = { record, events, dir, truncatedLines, links };
  if (process !== undefined) run.process = process;
  if (lastHeartbeat !== undefined) run.lastHeartbeat = lastHeartbeat;
  return run;
}

/** Every run in the store, oldest first. */
export function listRuns(storeDir: string): StoredRun[] {
  if (!existsSync(storeDir)) return [];
  const runs: StoredRun[] = [];
  for (const entry of readdirSync(storeDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const run = readRun(join(storeDir, entry.name));
    if (run !== undefined) runs.push(run);
  }
  return runs.sort((a, b) => a.record.startTime - b.record.startTime);
}

/** Finds a run by full id, id prefix (≥ 4 characters) or name (the newest run of that name). */
export function findRun(storeDir: string, idOrName: string): StoredRun | undefined {
  const exact = readRun(runDir(storeDir, idOrName));
  if (exact !== undefined) return exact;
  const runs = listRuns(storeDir);
  const byPrefix = idOrName.length >= 4 ? runs.filter((r) => r.record.id.startsWith(idOrName)) : [];
  if (byPrefix.length === 1) return byPrefix[0];
  if (byPrefix.length > 1) throw new Error(`run id prefix ${JSON.stringify(idOrName)} is ambiguous (${byPrefix.length} runs)`);
  return runs.filter((r) => r.record.name === idOrName).pop();
}
