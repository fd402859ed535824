#!/usr/bin/env node
// The `runtel` command. Each subcommand lives in ./commands/<name>.ts and is added below.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { bridgeCommand } from './commands/bridge.js';
import { demoCommand } from './commands/demo.js';
import { lsCommand } from './commands/ls.js';
import { showCommand } from './commands/show.js';
import { syncCommand } from './commands/sync.js';
import { CliError } from './shared.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function createProgram(): Command {
  return new Command('runtel')
    .description('Log ML experiment runs, and look at the local run store (./runtel-runs, or $RUNTEL_DIR).')
    .version(version(), '-v, --version')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nExamples:\n  runtel demo                 train and log a small grid search\n  runtel ls                   list the runs\n  runtel show iris-softmax    one run in detail, with charts')
    .addCommand(demoCommand())
    .addCommand(lsCommand())
    .addCommand(showCommand())
    .addCommand(syncCommand())
    .addCommand(bridgeCommand());
}

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) {
    // Expected failures (CliError) and anything else: one line, no stack trace, exit code 1.
    process.stderr.write(`runtel: ${error instanceof Error ? error.message : String(error)}\n`);
    if (error instanceof Error && !(error instanceof CliError) && process.env.RUNTEL_DEBUG) process.stderr.write(`${error.stack}\n`);
  }
  process.exitCode = error instanceof CliError ? error.exitCode : 1;
}
