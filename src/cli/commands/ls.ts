// `runtel ls`: the runs in the local JSONL store, newest first, child runs indented under their parent.

import { Command } from 'commander';
import { listRuns } from '../../backends/jsonl/store.js';
import { withLiveness } from '../../backends/jsonl/liveness.js';
import { cliStaleAfter } from '../liveness.js';
import { rootsOf, runsTable, treeRows } from '../runs.js';
import { dirOption, existingStoreDir, helpText, integerArg, terminalWidth, useColor } from '../shared.js';

interface LsOptions {
  dir?: string;
  experiment?: string;
  limit: number;
}

export function lsCommand(): Command {
  return new Command('ls')
    .summary('list runs in the local store, child runs under their parent')
    .description('List runs in the local store: newest first, child runs (e.g. search trials) indented under their parent.')
    .addOption(dirOption())
    .option('-e, --experiment <name>', 'only runs of this experiment')
    .option('-n, --limit <n>', 'show the newest <n> top-level runs, each with its child runs', integerArg(1), 20)
    .addHelpText(
      'after',
      helpText(
        'Columns: name, id (first 8 characters), experiment, status, duration, start time (local), and up to 3 latest ' +
          'metrics: the search objective first, then validation metrics.',
        "A run left running whose process is gone shows as crashed (on the host that wrote it the process is checked; " +
          'elsewhere, nothing written for 3 heartbeat intervals, $RUNTEL_HEARTBEAT_INTERVAL_MILLIS, default 30 s). ' +
          "'runtel reap' writes the crash into the store.",
        "'runtel show <name-or-id>' gives the details of one run.",
      ),
    )
    .action((options: LsOptions) => {
      process.stdout.write(renderLs(options));
    });
}

export function renderLs(options: LsOptions): string {
  const dir = existingStoreDir(options.dir);
  const staleAfterMillis = cliStaleAfter(undefined);
  let runs = listRuns(dir).map((r) => withLiveness(r, { staleAfterMillis }).record);
  if (options.experiment !== undefined) runs = runs.filter((r) => r.experiment === options.experiment);
  if (runs.length === 0) {
    const which = options.experiment === undefined ? 'No runs' : `No runs of experiment ${JSON.stringify(options.experiment)}`;
    return `${which} in ${dir}. Try 'runtel demo' to make some.\n`;
  }
  const roots = rootsOf(runs).reverse();
  const shown = roots.slice(0, options.limit);
  const rows = treeRows(shown, runs);
  const byId = new Map(runs.map((r) => [r.id, r]));
  let out = runsTable(rows, byId, useColor(), process.stdout.isTTY === true ? terminalWidth() : undefined) + '\n';
  const children = rows.length - shown.length;
  out += `${shown.length} top-level run${shown.length === 1 ? '' : 's'}${children > 0 ? ` and ${children} child run${children === 1 ? '' : 's'}` : ''} in ${dir}`;
  if (roots.length > shown.length) out += ` (${roots.length - shown.length} older not shown: use --limit)`;
  return out + '\n';
}
