// Reading the JSONL store: `<dir>/<runId>/events.jsonl` plus `<dir>/<runId>/artifacts/`.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../../core/events.js';
import { applyEvent } from '../../core/RunRecord.js';
import type { RunRecord } from '../../core/RunRecord.js';
import { decodeEvent } from './codec.js';

export const EVENTS_FILE = 'events.jsonl';
export const ARTIFACTS_DIR = 'artifacts';

export interface StoredRun {
  record: RunRecord;
  events: RunEvent[];
  /** The run's folder. */
  dir: string;
  /** A last line cut short by a crash mid-write is skipped and counted here. */
  truncatedLines: number;
}

export function runDir(storeDir: string, runId: string): string {
  return join(storeDir, runId);
}

/** Reads one run's events; undefined when the folder has no event log. */
export function readRun(dir: string): StoredRun | undefined {
  const file = join(dir, EVENTS_FILE);
  if (!existsSync(file)) return undefined;
  return parseRunLog(readFileSync(file, 'utf8'), dir);
}

export function parseRunLog(text: string, dir: string): StoredRun | undefined {
  const lines = text.split('\n');
  let lastLine = lines.length - 1;
  while (lastLine > 0 && lines[lastLine] === '') lastLine--;
  const events: RunEvent[] = [];
  let record: RunRecord | undefined;
  let truncatedLines = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    let event: RunEvent;
    try {
      event = decodeEvent(line, record?.id);
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
  return { record, events, dir, truncatedLines };
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
