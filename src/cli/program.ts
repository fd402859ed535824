// The `runtel` command tree. Each subcommand lives in ./commands/<name>.ts and is added below;
// ./main.ts runs it.

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { bridgeCommand } from './commands/bridge.js';
import { demoCommand } from './commands/demo.js';
import { lsCommand } from './commands/ls.js';
import { reapCommand } from './commands/reap.js';
import { showCommand } from './commands/show.js';
import { syncCommand } from './commands/sync.js';
import { helpText } from './shared.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function createProgram(): Command {
  return new Command('runtel')
    .description('Log ML experiment runs, and look at the local run store (./runtel-runs, or $RUNTEL_DIR).')
    .version(version(), '-v, --version')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      helpText({
        title: 'Examples:',
        items: [
          ['runtel demo', 'train and log a small grid search'],
          ['runtel ls', 'list the runs'],
          ['runtel show iris-softmax', 'one run in detail, with charts'],
        ],
      }),
    )
    .addCommand(demoCommand())
    .addCommand(lsCommand())
    .addCommand(showCommand())
    .addCommand(syncCommand())
    .addCommand(reapCommand())
    .addCommand(bridgeCommand());
}

