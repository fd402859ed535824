// `runtel show <run>`: one run in full: params, tags, latest metrics, artifacts, error, child runs,
// and a chart of every metric curve.

import { Command } from 'commander';
import { findRun, listRuns } from '../../backends/jsonl/store.js';
import type { StoredRun } from '../../backends/jsonl/store.js';
import { liveness, withLiveness } from '../../backends/jsonl/liveness.js';
import { cliStaleAfter } from '../liveness.js';
import type { RunRecord } from '../../core/RunRecord.js';
import { lastMetricValues } from '../../core/RunRecord.js';
import { formatBytes, formatNumber } from '../../core/format.js';
import { metricCurve, renderChart } from '../chart.js';
import { durationText, runsTable, statusText, treeRows } from '../runs.js';
import { CliError, dirOption, existingStoreDir, formatTime, noRunMessage, paint, terminalWidth, useColor } from '../shared.js';

interface ShowOptions {
  dir?: string;
  charts: boolean;
}

export function showCommand(): Command {
  return new Command('show')
    .summary('show one run in full, with charts of its metrics')
    .description('Show one run: params, tags, latest metrics, artifacts, error, child runs and a chart of each metric curve.')
    .argument('<run>', 'run id, id prefix (4+ characters) or name (the newest run of that name)')
    .addOption(dirOption())
    .option('--no-charts', 'leave out the metric charts')
    .action((run: string, options: ShowOptions) => {
      process.stdout.write(renderShow(run, options));
    });
}

export function renderShow(idOrName: string, options: ShowOptions): string {
  const dir = existingStoreDir(options.dir);
  let stored: StoredRun | undefined;
  try {
    stored = findRun(dir, idOrName);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
  if (stored === undefined) throw new CliError(noRunMessage(idOrName, dir));
  const staleAfterMillis = cliStaleAfter(undefined);
  const crashed = liveness(stored, { staleAfterMillis })?.state === 'crashed';
  stored = withLiveness(stored, { staleAfterMillis });
  const record = stored.record;
  const all = listRuns(dir).map((r) => withLiveness(r, { staleAfterMillis }).record);
  const byId = new Map(all.map((r) => [r.id, r]));
  byId.set(record.id, record);
  const color = useColor();
  const out: string[] = [];

  out.push(`${paint(record.name, 'bold', color)}  ${statusText(record.status, color)}`);
  const parent = record.parentId === undefined ? undefined : byId.get(record.parentId);
  const header: Array<[string, string]> = [
    ['id', record.id],
    ['experiment', record.experiment],
  ];
  if (record.parentId !== undefined) {
    header.push(['parent', parent === undefined ? `${record.parentId} (not in this store)` : `${parent.name} (${record.parentId.slice(0, 8)})`]);
  }
  header.push(['started', formatTime(record.startTime)]);
  if (record.endTime !== undefined) header.push(['ended', formatTime(record.endTime)]);
  const took = durationText(record);
  if (took !== '') header.push(['duration', took]);
  header.push(['folder', stored.dir]);
  for (const [label, url] of Object.entries(stored.links)) header.push([label, url]);
  if (stored.truncatedLines > 0) header.push(['note', `${stored.truncatedLines} incomplete last line skipped (the writer was interrupted)`]);
  if (crashed) header.push(['note', "the store still has it running; 'runtel reap' writes the crash (ended: its last sign of life)"]);
  out.push(...aligned(header, color));

  section(out, 'Params', aligned(Object.entries(record.params), color), color);
  section(out, 'Tags', aligned(Object.entries(record.tags), color), color);

  const latest = lastMetricValues(record);
  const metricRows: Array<[string, string]> = Object.keys(latest)
    .sort()
    .map((key) => {
      const samples = record.metrics[key]!;
      const step = samples.reduce((max, s) => Math.max(max, s.step), 0);
      const points = samples.length === 1 ? '1 point' : `${samples.length} points`;
      return [key, `${formatNumber(latest[key]!).padEnd(12)} ${paint(`step ${step}, ${points}`, 'gray', color)}`];
    });
  section(out, 'Metrics (latest)', aligned(metricRows, color), color);

  const artifacts: Array<[string, string]> = record.artifacts.map((a) => [a.name, `${a.kind}, ${formatBytes(a.size)}  ${paint(a.path, 'gray', color)}`]);
  section(out, 'Artifacts', aligned(artifacts, color), color);

  if (record.error !== undefined) {
    const lines = [paint(`${record.error.type}: ${record.error.message}`, 'red', color)];
    if (record.error.stack !== undefined) {
      lines.push(...record.error.stack.split('\n').filter((line) => line.trim().startsWith('at ')).map((line) => paint(line.trim(), 'gray', color)));
    }
    section(out, 'Error', lines, color);
  }

  const rows = treeRows([record], all).slice(1);
  if (rows.length > 0) {
    const table = runsTable(
      rows.map((row) => ({ ...row, prefix: row.prefix.slice(3) })),
      byId,
      color,
      process.stdout.isTTY === true ? terminalWidth() - 2 : undefined,
    );
    section(out, `Child runs (${rows.length})`, table.split('\n'), color);
  }

  if (options.charts) out.push(...charts(record, color));
  return out.join('\n') + '\n';
}

function charts(record: RunRecord, color: boolean): string[] {
  const out: string[] = [];
  const single: string[] = [];
  const width = terminalWidth() - 2;
  for (const key of Object.keys(record.metrics).sort()) {
    const curve = metricCurve(record.metrics[key]!);
    const chart = renderChart(curve, { width, color });
    const skipped = curve.skipped === 0 ? '' : `, ${curve.skipped} NaN/Infinity point${curve.skipped === 1 ? '' : 's'} skipped`;
    if (chart === undefined) {
      const nonFinite = `${curve.skipped} NaN/Infinity`;
      if (curve.values.length === 0) single.push(`${key} (only ${nonFinite})`);
      else single.push(curve.skipped === 0 ? key : `${key} (${nonFinite} skipped)`);
      continue;
    }
    const steps = curve.steps;
    const title = `  ${paint(key, 'bold', color)}  ${paint(`${steps.length} steps, ${steps[0]}–${steps[steps.length - 1]}${skipped}`, 'gray', color)}`;
    out.push('', title, ...chart.split('\n').map((line) => '  ' + line));
  }
  const note = single.length === 0 ? [] : [paint(`  Not charted (fewer than 2 finite points): ${single.join(', ')}`, 'gray', color)];
  if (out.length === 0) return note.length === 0 ? [] : ['', ...note];
  return ['', paint('Charts', 'cyan', color), ...out, ...(note.length === 0 ? [] : ['', ...note])];
}

function section(out: string[], title: string, lines: string[], color: boolean): void {
  out.push('', paint(title, 'cyan', color));
  if (lines.length === 0) out.push(paint('  (none)', 'gray', color));
  else out.push(...lines.map((line) => (line.startsWith('  ') ? line : '  ' + line)));
}

function aligned(pairs: ReadonlyArray<readonly [string, string]>, color: boolean): string[] {
  const width = Math.max(0, ...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `  ${paint(key.padEnd(width), 'gray', color)}  ${value}`);
}
