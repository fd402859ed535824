// Helpers the CLI commands share: option parsing, the store folder, errors, terminal formatting.

import { InvalidArgumentError, Option } from 'commander';
import type { AddHelpTextContext } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { defaultStoreDir } from '../backends/jsonl/JsonlLogger.js';
import { getStringFromEnv } from '../core/env.js';
import { resolve } from 'node:path';

/** An expected failure: printed as `runtel: <message>` and exits with `exitCode`, no stack trace. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** `--dir <dir>`: the JSONL store folder. */
export function dirOption(): Option {
  return new Option('--dir <dir>', 'run store folder (default: $RUNTEL_DIR, else ./runtel-runs)');
}

/** The store folder for a command's `--dir` value. */
export function storeDir(dir: string | undefined): string {
  return dir === undefined ? defaultStoreDir() : resolve(dir);
}

/**
 * The store folder to read, for `ls` and `show`: a folder named by `--dir` or `RUNTEL_DIR` must
 * exist (a typo is an error, not "no runs"); the default ./runtel-runs may not exist yet.
 */
export function existingStoreDir(dir: string | undefined): string {
  const path = storeDir(dir);
  const named = dir !== undefined ? '--dir' : getStringFromEnv('RUNTEL_DIR') !== undefined ? 'RUNTEL_DIR' : undefined;
  if (named !== undefined) {
    if (!existsSync(path)) throw new CliError(`no run store at ${path} (${named}): the folder does not exist`);
    if (!statSync(path).isDirectory()) throw new CliError(`no run store at ${path} (${named}): not a folder`);
  }
  return path;
}

/** A paragraph, or a titled list of `[term, description]` items in two columns. */
export type HelpBlock = string | { title: string; items: ReadonlyArray<readonly [string, string]> };

/**
 * Text for `addHelpText('after', …)`, wrapped to the help's width the way commander wraps its own
 * (the terminal's width, else 80): paragraphs at word boundaries, lists in aligned columns. Write
 * each paragraph as one line; the line breaks come from the width.
 */
export function helpText(...blocks: HelpBlock[]): (context: AddHelpTextContext) => string {
  return ({ error, command }) => {
    const output = command.configureOutput();
    const help = command.createHelp();
    help.prepareContext({ helpWidth: (error ? output.getErrHelpWidth?.() : output.getOutHelpWidth?.()) ?? 80 });
    const width = help.helpWidth ?? 80;
    const text = blocks.map((block) => {
      if (typeof block === 'string') return help.boxWrap(block, width);
      const termWidth = Math.max(...block.items.map(([term]) => term.length));
      return [block.title, ...block.items.map(([term, description]) => help.formatItem(term, termWidth, description, help))].join('\n');
    });
    return `\n${text.join('\n\n')}`;
  };
}

/** The message for a run `findRun` did not find: says when an id prefix is too short to be one. */
export function noRunMessage(idOrName: string, dir: string): string {
  if (/^[0-9a-f]{1,3}$/i.test(idOrName)) {
    return `no run named ${JSON.stringify(idOrName)} in ${dir}, and an id prefix needs at least 4 characters (${JSON.stringify(idOrName)} has ${idOrName.length}); see 'runtel ls'`;
  }
  return `no run with id or name ${JSON.stringify(idOrName)} in ${dir} (see 'runtel ls')`;
}

/** Commander argument parser for integers ≥ `min`. */
export function integerArg(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(min === 0 ? 'expected an integer ≥ 0.' : `expected an integer ≥ ${min}.`);
    }
    return n;
  };
}

/** Whether standard output takes colours (a terminal, and NO_COLOR unset). */
export function useColor(): boolean {
  return process.stdout.isTTY === true && (process.env.NO_COLOR ?? '') === '';
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1, dim: 2 } as const;
export type Color = keyof typeof CODES;

export function paint(text: string, color: Color, enabled = useColor()): string {
  return enabled ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}

/** Width of the terminal standard output goes to; `COLUMNS` or 100 when it is not a terminal. */
export function terminalWidth(): number {
  const env = Number(process.env.COLUMNS);
  return process.stdout.columns ?? (Number.isInteger(env) && env > 0 ? env : 100);
}

/** Local time as `YYYY-MM-DD HH:MM:SS` (`YYYY-MM-DD HH:MM` without seconds). */
export function formatTime(millis: number, seconds = true): string {
  const d = new Date(millis);
  const p = (n: number): string => String(n).padStart(2, '0');
  const time = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  return seconds ? `${time}:${p(d.getSeconds())}` : time;
}
