// Packs one file_stream request from a run's history: as many encoded lines as fit in W&B's request
// limit, the summary when it changed, and the names of files uploaded since the last request.
// Offsets are exact because a run has one file_stream request in flight at a time.

import type { RunHistory } from './history.js';

export interface StreamRequest {
  body: string;
  /** History lines it carries (acknowledged from the front when it succeeds). */
  lines: number;
  points: number;
  /** Smallest event seq among its lines (Infinity when it has none). */
  seq: number;
  /** The summary version it carries, if any. */
  summaryVersion: number | undefined;
  /** How many of the uploaded names it announces. */
  uploaded: number;
  /** System metric rows it carries (`wandb-events.jsonl`), from the front of the queue. */
  eventLines: number;
}

export interface StreamPackOptions {
  maxRequestBytes: number;
  maxLineBytes: number;
  /** The summary version W&B has; a newer one goes in the request. */
  sentSummaryVersion: number;
  /** Send the summary even if unchanged (the run's completion). */
  forceSummary: boolean;
  /** The summary's time (the run's end time when it is finishing). */
  nowMillis: number;
  uploaded: readonly string[];
  /** System metric rows waiting for `wandb-events.jsonl`, the first at line `offset`. */
  events?: { offset: number; lines: ReadonlyArray<{ line: string; points: number; seq: number }> };
  /** Exit code: makes this the completing request (nothing else may be queued). */
  exitCode?: number;
  /** Called when the summary alone is over the line limit: it is not sent, and this version should count as sent. */
  onSummaryTooLarge: (bytes: number, version: number) => void;
}

/** The next request, or undefined when there is nothing to send. */
export function packStreamRequest(history: RunHistory, o: StreamPackOptions): StreamRequest | undefined {
  history.encode();
  // Budget: the envelope, then the summary, then as many lines as fit.
  let budget = o.maxRequestBytes - 256 - Buffer.byteLength(JSON.stringify(o.uploaded));
  const summaryVersion = history.summaryVersion;
  let summary: string | undefined;
  let sentVersion: number | undefined;
  if (summaryVersion !== o.sentSummaryVersion || o.forceSummary) {
    const raw = history.summaryLine(o.nowMillis);
    summary = JSON.stringify(raw);
    sentVersion = summaryVersion;
    if (Buffer.byteLength(raw) > o.maxLineBytes || Buffer.byteLength(summary) > budget) {
      o.onSummaryTooLarge(Buffer.byteLength(raw), summaryVersion);
      summary = undefined;
      sentVersion = undefined;
    }
  }
  const lines: string[] = [];
  let points = 0;
  let seq = Infinity;
  let first: number | undefined;
  for (const entry of history.lines) {
    const escaped = JSON.stringify(entry.line);
    const size = Buffer.byteLength(escaped) + 1;
    const reserved = summary === undefined ? 0 : Buffer.byteLength(summary);
    if (size + reserved > budget) {
      if (lines.length > 0 || summary === undefined || size > budget) break;
      // The first line and the summary do not fit together: the line goes first.
      summary = undefined;
      sentVersion = undefined;
    }
    first ??= entry.index;
    lines.push(escaped);
    points += entry.points;
    if (entry.seq < seq) seq = entry.seq;
    budget -= size;
  }
  // System rows after the history, as long as they fit (the rest go in the next request).
  const eventLines: string[] = [];
  const reserved = summary === undefined ? 0 : Buffer.byteLength(summary);
  for (const entry of o.events?.lines ?? []) {
    const escaped = JSON.stringify(entry.line);
    const size = Buffer.byteLength(escaped) + 1;
    if (size + reserved > budget - 64) break;
    eventLines.push(escaped);
    points += entry.points;
    if (entry.seq < seq) seq = entry.seq;
    budget -= size;
  }
  const completing = o.exitCode !== undefined;
  if (lines.length === 0 && eventLines.length === 0 && summary === undefined && o.uploaded.length === 0 && !completing) return undefined;
  const files: string[] = [];
  if (lines.length > 0) files.push(`"wandb-history.jsonl":{"offset":${first!},"content":[${lines.join(',')}]}`);
  if (eventLines.length > 0) files.push(`"wandb-events.jsonl":{"offset":${o.events!.offset},"content":[${eventLines.join(',')}]}`);
  if (summary !== undefined) files.push(`"wandb-summary.json":{"offset":0,"content":[${summary}]}`);
  let body = `{"files":{${files.join(',')}}`;
  if (o.uploaded.length > 0) body += `,"uploaded":${JSON.stringify(o.uploaded)}`;
  if (completing) body += `,"complete":true,"exitcode":${o.exitCode}`;
  body += '}';
  return { body, lines: lines.length, points, seq, summaryVersion: summary === undefined ? undefined : sentVersion, uploaded: o.uploaded.length, eventLines: eventLines.length };
}
