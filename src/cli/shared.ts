// Helpers the CLI commands share: option parsing, the store folder, errors, terminal formatting.

import { InvalidArgumentError, Option } from 'commander';
import { defaultStoreDir } from '../backends/jsonl/JsonlLogger.js';
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

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, cyan: 36, gray: 90, bold: 1, dim: 2 } as const;
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
