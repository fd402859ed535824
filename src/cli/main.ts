#!/usr/bin/env node
// The `runtel` command (the tree is in ./program.ts).

import { CommanderError } from 'commander';
import { createProgram } from './program.js';
import { CliError } from './shared.js';

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
