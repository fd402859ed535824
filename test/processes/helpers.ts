// Shared by the cross-process tests: a launching process (test/fixtures/launch-children.mjs) whose
// run starts trainer processes (test/fixtures/child-trainer.mjs, or the Python example helper) with
// its childEnv(), all real Node/Python processes on the built dist/.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../deploy/helpers.js';
import type { CommandResult } from '../deploy/helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '..', '..');
export const LAUNCHER = join(REPO, 'test', 'fixtures', 'launch-children.mjs');
export const TRAINER = join(REPO, 'test', 'fixtures', 'child-trainer.mjs');
export const CLI = join(REPO, 'dist', 'cli', 'main.js');

/** This process's environment without anything runtel, OTel, MLflow, W&B or a launcher would read, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(RUNTEL_|OTEL_|MLFLOW_|WANDB_|TRACEPARENT$|TRACESTATE$|RANK$|WORLD_SIZE$|LOCAL_RANK$|SLURM_)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

export interface TrainerSpec {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** A Node trainer (child-trainer.mjs) with `args` and extra `env` over the launcher's. */
export function nodeTrainer(args: string[] = [], env: Record<string, string> = {}): TrainerSpec {
  return { cmd: process.execPath, args: [TRAINER, ...args], env };
}

/** What a trainer printed about its run. */
export interface TrainerRun {
  id: string;
  name: string;
  parentId: string | undefined;
  experiment: string;
}

export interface Launch {
  parent: { id: string; name: string; experiment: string };
  childEnv: Record<string, string>;
  trainers: Array<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
  /** Each trainer's run, in spec order. */
  runs: TrainerRun[];
  launcher: CommandResult;
}

/** Runs the launcher (its run named `name` in `experiment`) with `env`; throws unless it and every trainer exited 0. */
export async function launch(name: string, experiment: string, trainers: TrainerSpec[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Launch> {
  const result = await runCommand(process.execPath, [LAUNCHER, JSON.stringify({ name, experiment, trainers })], { env, timeoutMs });
  if (result.code !== 0) throw new Error(`launcher exited ${result.code}: ${result.stderr}`);
  const out = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Omit<Launch, 'runs' | 'launcher'>;
  out.trainers.forEach((t, i) => {
    if (t.code !== 0) throw new Error(`trainer ${i} exited ${t.code} (${t.signal}): ${t.stderr}`);
  });
  const runs = out.trainers.map((t) => JSON.parse(t.stdout.trim().split('\n').at(-1)!) as TrainerRun);
  return { ...out, runs, launcher: result };
}

/** One trainer run directly (no launcher) with `env`; its run and stderr. */
export async function runTrainer(args: string[], env: NodeJS.ProcessEnv): Promise<{ runs: TrainerRun[]; stderr: string }> {
  const result = await runCommand(process.execPath, [TRAINER, ...args], { env, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`trainer exited ${result.code}: ${result.stderr}`);
  const runs = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as TrainerRun);
  return { runs, stderr: result.stderr };
}
