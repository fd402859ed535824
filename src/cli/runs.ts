// Runs as the CLI shows them: a tree (children under their parent), a table row per run, and the
// few metrics worth a glance.

import Table from 'cli-table3';
import type { RunRecord } from '../core/RunRecord.js';
import { lastMetricValues } from '../core/RunRecord.js';
import type { RunStatus } from '../core/types.js';
import { formatDuration, formatNumber } from '../core/format.js';
import { formatTime, paint } from './shared.js';

export interface TreeRow {
  record: RunRecord;
  depth: number;
  /** Tree drawing to print before the name, e.g. `├─ ` or `│  └─ `. */
  prefix: string;
}

/** Start order; runs started in the same millisecond by name, numbers compared as numbers (trial-2 before trial-10). */
export function byStart(a: RunRecord, b: RunRecord): number {
  return a.startTime - b.startTime || a.name.localeCompare(b.name, 'en', { numeric: true }) || a.id.localeCompare(b.id);
}

/**
 * Orders `roots` and their descendants among `runs` depth-first: each run followed by its children
 * in start order. A run whose parent is not in `runs` counts as a root when it is in `roots`.
 */
export function treeRows(roots: readonly RunRecord[], runs: readonly RunRecord[]): TreeRow[] {
  const children = childrenByParent(runs);
  const rows: TreeRow[] = [];
  const seen = new Set<string>();
  const visit = (record: RunRecord, depth: number, prefix: string, indent: string): void => {
    if (seen.has(record.id)) return; // a parent loop in a damaged store must not hang the CLI
    seen.add(record.id);
    rows.push({ record, depth, prefix });
    const kids = children.get(record.id) ?? [];
    kids.forEach((kid, i) => {
      const last = i === kids.length - 1;
      visit(kid, depth + 1, indent + (last ? '└─ ' : '├─ '), indent + (last ? '   ' : '│  '));
    });
  };
  for (const root of roots) visit(root, 0, '', '');
  return rows;
}

/** Runs whose parent is not among `runs`, in start order. */
export function rootsOf(runs: readonly RunRecord[]): RunRecord[] {
  const ids = new Set(runs.map((r) => r.id));
  return runs.filter((r) => r.parentId === undefined || !ids.has(r.parentId)).sort(byStart);
}

export function childrenByParent(runs: readonly RunRecord[]): Map<string, RunRecord[]> {
  const children = new Map<string, RunRecord[]>();
  for (const run of runs) {
    if (run.parentId === undefined) continue;
    let list = children.get(run.parentId);
    if (list === undefined) children.set(run.parentId, (list = []));
    list.push(run);
  }
  for (const list of children.values()) list.sort(byStart);
  return children;
}

const KEY_PREFIXES = ['val/', 'val_', 'valid', 'eval', 'test'];

/**
 * Up to `max` metrics worth showing first, as [key, latest value]: the objective of the run's search
 * (for a search's parent run, its `best_<objective>`), then validation/eval/test metrics, then the rest.
 */
export function keyMetrics(record: RunRecord, parent: RunRecord | undefined, max = 3): Array<[string, number]> {
  const latest = lastMetricValues(record);
  const preferred: string[] = [];
  const own = record.tags.objective;
  if (own !== undefined) preferred.push(`best_${own}`);
  const inherited = parent?.tags.objective;
  if (inherited !== undefined) preferred.push(inherited);
  const rank = (key: string): number => {
    const p = preferred.indexOf(key);
    if (p >= 0) return p;
    return KEY_PREFIXES.some((prefix) => key.startsWith(prefix)) ? preferred.length : preferred.length + 1;
  };
  return Object.keys(latest)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .slice(0, max)
    .map((key) => [key, latest[key]!]);
}

const STATUS_COLORS = { success: 'green', failed: 'red', killed: 'yellow', crashed: 'magenta', running: 'cyan' } as const;

export function statusText(status: RunStatus, color: boolean): string {
  return paint(status, STATUS_COLORS[status], color);
}

/** Wall time of a finished run, or time so far (`…`) of a running one. */
export function durationText(record: RunRecord, now = Date.now()): string {
  if (record.endTime !== undefined) return formatDuration(record.endTime - record.startTime);
  return record.status === 'running' ? `${formatDuration(now - record.startTime)}…` : '';
}

/**
 * The runs table of `runtel ls` (and of the child runs in `runtel show`). With `maxWidth`, each row
 * shows only as many of its key metrics as fit (at least one).
 */
export function runsTable(rows: readonly TreeRow[], byId: ReadonlyMap<string, RunRecord>, color: boolean, maxWidth?: number): string {
  const head = ['name', 'id', 'experiment', 'status', 'duration', 'started', 'metrics (latest)'];
  const cells = rows.map(({ record, prefix }) => ({
    fixed: [prefix + record.name, record.id.slice(0, 8), record.experiment, record.status, durationText(record), formatTime(record.startTime, false)],
    metrics: keyMetrics(record, record.parentId === undefined ? undefined : byId.get(record.parentId)).map(([key, value]) => `${key}=${formatNumber(value)}`),
    prefix,
    record,
  }));
  let budget = Infinity;
  if (maxWidth !== undefined) {
    // Each column takes its widest cell plus 2 of padding and 1 of border; one more border closes the row.
    const used = head.slice(0, 6).reduce((sum, h, i) => sum + Math.max(h.length, ...cells.map((c) => c.fixed[i]!.length)) + 3, 0);
    budget = Math.max(12, maxWidth - used - 4);
  }
  const table = new Table({
    head,
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: { head: color ? ['cyan'] : [], border: color ? ['gray'] : [], 'padding-left': 1, 'padding-right': 1 },
  });
  for (const { fixed, metrics, prefix, record } of cells) {
    table.push([
      paint(prefix, 'gray', color) + record.name,
      fixed[1]!,
      fixed[2]!,
      statusText(record.status, color),
      fixed[4]!,
      fixed[5]!,
      fitMetrics(metrics, budget),
    ]);
  }
  return table.toString();
}

function fitMetrics(metrics: readonly string[], budget: number): string {
  let text = '';
  for (const m of metrics) {
    const next = text === '' ? m : `${text}  ${m}`;
    if (next.length > budget) {
      if (text === '') return m; // the first one whole, even if the table gets wider
      break;
    }
    text = next;
  }
  return text;
}
