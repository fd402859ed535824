// Shared by the crash tests: a real training process (test/fixtures/crash-child.mjs) that is then
// killed with SIGKILL or dies of memory, the runtel CLI as users run it, and the figures.

import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, '..', 'fixtures', 'crash-child.mjs');
export const CLI = join(HERE, '..', '..', 'dist', 'cli', 'main.js');

export type Death = 'sigkill' | 'oom';

export interface Trainer {
  readonly proc: ChildProcess;
  readonly runId: string;
  readonly pid: number;
  /** The last step the process announced it had logged, and when (-1 before any). */
  lastStep(): { step: number; at: number };
  /** When each step was logged, by step. */
  stepTimes(): readonly number[];
  waitForStep(step: number, timeoutMillis?: number): Promise<void>;
  /** Resolves when the process has exited: its code and signal, and when. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  stderr(): string;
  /** SIGKILL now; resolves with the time it was sent once the process is gone. */
  kill(): Promise<number>;
}

/**
 * Starts the trainer with `env` over this process's environment (runtel's exit handlers on, as in
 * a user's script). `oom` mode runs it with a 48 MiB old space. Resolves once it has started its run.
 */
export async function startTrainer(mode: 'loop' | 'oom' | 'idle', experiment: string, env: Record<string, string>): Promise<Trainer> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, RUNTEL_BACKENDS: 'jsonl', ...env };
  delete childEnv.RUNTEL_EXIT_HANDLERS;
  const args = mode === 'oom' ? ['--max-old-space-size=48', CHILD, mode, experiment] : [CHILD, mode, experiment];
  const proc = spawn(process.execPath, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let ready = '';
  let last = { step: -1, at: 0 };
  const times: number[] = [];
  const waiters: Array<() => void> = [];
  proc.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const line of lines) {
      const m = /^step (\d+) (\d+)$/.exec(line);
      if (m !== null) {
        last = { step: Number(m[1]), at: Number(m[2]) };
        times[last.step] = last.at;
      }
      else if (line.startsWith('ready ')) ready = line;
    }
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    proc.once('exit', (code, signal) => {
      resolve({ code, signal, at: Date.now() });
      for (const w of waiters.splice(0)) w();
    });
  });
  const waitUntil = async (check: () => boolean, what: string, timeoutMillis: number): Promise<void> => {
    const deadline = Date.now() + timeoutMillis;
    while (!check()) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the trainer exited (${proc.exitCode ?? proc.signalCode}) before ${what}: ${err.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${err.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  await waitUntil(() => ready !== '', 'its run to start', 30_000);
  const [, runId, pid] = ready.split(' ');
  return {
    proc,
    runId: runId!,
    pid: Number(pid),
    lastStep: () => last,
    stepTimes: () => times,
    waitForStep: (step, timeoutMillis = 30_000) => waitUntil(() => last.step >= step, `step ${step}`, timeoutMillis),
    exited,
    stderr: () => err,
    kill: async () => {
      const at = Date.now();
      proc.kill('SIGKILL');
      await exited;
      return at;
    },
  };
}

/**
 * The trainer's death: SIGKILL after it logged `steps` steps, or (oom) waiting for V8 to abort.
 * Returns when it died (for SIGKILL, when the signal was sent) and the last step it announced.
 */
export async function die(trainer: Trainer, death: Death, steps = 300): Promise<{ diedAt: number; lastStep: number; signal: NodeJS.Signals | null }> {
  if (death === 'sigkill') {
    await trainer.waitForStep(steps);
    const diedAt = await trainer.kill();
    const exit = await trainer.exited;
    return { diedAt, lastStep: trainer.lastStep().step, signal: exit.signal };
  }
  const exit = await Promise.race([
    trainer.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the oom trainer did not die within 120 s')), 120_000)),
  ]);
  return { diedAt: exit.at, lastStep: trainer.lastStep().step, signal: exit.signal };
}

/** `runtel <args>` (the built CLI), with `env` over this environment. */
export function runtel(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMillis: number, everyMillis = 100): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMillis} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMillis));
  }
}

/** The figures the crash tests measure, printed once per file so the report can quote them. */
export const figures: string[] = [];
export function figure(line: string): void {
  figures.push(line);
  process.stdout.write(`[figure] ${line}\n`);
}
