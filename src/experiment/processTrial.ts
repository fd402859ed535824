// A trial in its own process (`isolation: 'process'`): the experiment forks trialHost.js with the
// parent run's childEnv(), so the trial's run, started there by createLoggerFromEnv, is the parent's
// child in every backend and writes to them itself. Only the outcome comes back, over the fork's
// IPC channel. A process that dies without reporting (SIGKILL, the OOM killer, a native crash)
// leaves its run running: the experiment finishes it `crashed`, as the supervisor that saw it die.

import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ErrorInfo } from '../core/events.js';
import { toErrorInfo } from '../core/events.js';
import type { ConfigValue, Logger, Run } from '../core/types.js';
import type { TrialOutcome } from './trial.js';
import { errorFromInfo } from './trial.js';

/** Run each trial in a fresh Node process, from a module whose default export is the trial function. */
export interface ProcessTrial {
  isolation: 'process';
  /**
   * The trial module: a path (relative to the current directory) or a `file:` URL of an ES module
   * whose default export is the trial function `(params, run, info) => objective`.
   */
  module: string | URL;
  /**
   * Environment of the trial processes, over this process's and the parent run's `childEnv()`. The
   * trial's run goes where `createLoggerFromEnv` sends it there (RUNTEL_DIR, MLFLOW_TRACKING_URI, ...).
   */
  env?: Record<string, string>;
  /** Node options of the trial processes. Default: this process's (`process.execArgv`), as `fork` does. */
  execArgv?: readonly string[];
}

/** Experiment → trial process: the one trial to run. */
export interface TrialRequest {
  type: 'trial';
  module: string;
  name: string;
  experiment: string;
  objective: string;
  params: unknown;
  index: number;
  total: number;
}

/** Trial process → experiment. */
export type TrialReport =
  /** The trial's run exists in the backends (sent before the trial function is called). */
  | { type: 'started'; runId: string }
  /** An uncaught exception or unhandled rejection while the run was running: runtel's exit handler finishes the run `failed` with it. */
  | { type: 'uncaught'; error: ErrorInfo }
  | ({ type: 'result' } & TrialOutcome);

export interface CheckedProcessTrial {
  moduleUrl: string;
  env: Record<string, string>;
  execArgv: string[];
}

// From the TypeScript sources (runtel's own tests) the host is loaded through tsx.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const PARENT_WATCH_MILLIS = 200;
const HOST = fileURLToPath(new URL(FROM_SOURCE ? './trialHost.ts' : './trialHost.js', import.meta.url));

export function isProcessTrial(trial: unknown): trial is ProcessTrial {
  return typeof trial === 'object' && trial !== null && 'isolation' in trial;
}

/** Validates a `ProcessTrial` at the call site; resolves the module to a file URL. */
export function checkProcessTrial(trial: ProcessTrial): CheckedProcessTrial {
  const { isolation, module, env = {}, execArgv } = trial;
  if (isolation !== 'process') throw new TypeError(`experiment.run: isolation must be 'process', got ${JSON.stringify(isolation)}`);
  let url: URL;
  if (module instanceof URL) url = module;
  // A scheme of two letters or more is a URL (`C:` is a drive).
  else if (typeof module === 'string' && module.trim() !== '') url = /^[a-z][a-z\d+.-]+:/i.test(module) ? new URL(module) : pathToFileURL(resolve(module));
  else throw new TypeError('experiment.run: module must be the path or file: URL of the trial module');
  if (url.protocol !== 'file:') throw new TypeError(`experiment.run: module must be a local file (a path or file: URL), got ${url.href}`);
  if (!existsSync(fileURLToPath(url))) throw new Error(`experiment.run: the trial module ${fileURLToPath(url)} does not exist`);
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new TypeError('experiment.run: env must be an object of strings');
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== 'string') throw new TypeError(`experiment.run: env.${key} must be a string, got ${typeof value}`);
  }
  if (execArgv !== undefined && !(Array.isArray(execArgv) && execArgv.every((a) => typeof a === 'string'))) {
    throw new TypeError('experiment.run: execArgv must be an array of strings');
  }
  let args = execArgv === undefined ? [...process.execArgv] : [...execArgv];
  if (FROM_SOURCE && !args.some((a) => a.includes('tsx'))) args = ['--import', 'tsx', ...args];
  return { moduleUrl: url.href, env: { ...env }, execArgv: args };
}

export interface ProcessTrialSpec {
  logger: Logger;
  parent: Run;
  trial: CheckedProcessTrial;
  request: Omit<TrialRequest, 'type' | 'module'>;
}

/** The trial's run id and outcome, once its process has exited. */
export async function runProcessTrial(spec: ProcessTrialSpec): Promise<TrialOutcome & { runId: string }> {
  const { logger, parent, trial, request } = spec;
  const env = { ...process.env, ...parent.childEnv(), ...trial.env };
  let runId: string | undefined;
  let uncaught: ErrorInfo | undefined;
  let result: TrialOutcome | undefined;
  let spawnError: unknown;

  const child = fork(HOST, [], { env, execArgv: trial.execArgv, serialization: 'advanced' });
  child.on('message', (message: TrialReport) => {
    if (message.type === 'started') runId = message.runId;
    else if (message.type === 'uncaught') uncaught ??= message.error;
    else if (message.type === 'result') result = { status: message.status, ...(message.value !== undefined ? { value: message.value } : {}), ...(message.error ? { error: message.error } : {}) };
  });
  // Both: 'exit' can come before the last messages are read; 'disconnect' means the channel is drained.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let disconnected = false;
    const settle = (): void => {
      if (exit !== undefined && disconnected) done(exit);
    };
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      settle();
    });
    child.once('disconnect', () => {
      disconnected = true;
      settle();
    });
    child.on('error', (error) => {
      // The process could not be started: there is no channel to drain. (Later errors, a send to a
      // process that died, say, are told by its exit.)
      if (child.pid !== undefined) return;
      spawnError ??= error;
      done({ code: null, signal: null });
    });
  });
  // The experiment's run finished from outside (a signal, logger.shutdown()): stop the trial too.
  const watch = setInterval(() => {
    if (parent.status === 'running') return;
    clearInterval(watch);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }, PARENT_WATCH_MILLIS).unref();
  if (child.pid !== undefined) {
    try {
      child.send({ type: 'trial', module: trial.moduleUrl, ...request } satisfies TrialRequest);
    } catch (error) {
      // Params that cannot be cloned (a function, say): the trial cannot run.
      spawnError = error;
      child.kill('SIGKILL');
    }
  }
  const { code, signal } = await exited;
  clearInterval(watch);

  let outcome: TrialOutcome;
  if (result !== undefined) outcome = result;
  else if (spawnError !== undefined) outcome = { status: 'failed', error: toErrorInfo(spawnError) };
  else {
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${String(code)}`;
    const error = toErrorInfo(new Error(`trial ${request.index}'s process (pid ${String(child.pid)}) ${how} before it reported its objective`));
    // SIGINT/SIGTERM: runtel's handler in the trial process finished its run `killed` before it died
    // (an error the trial threw meanwhile, logging to its finished run, say, changes nothing).
    if (signal === 'SIGTERM' || signal === 'SIGINT') outcome = { status: 'killed', error };
    else if (uncaught !== undefined) outcome = { status: 'failed', error: uncaught };
    else outcome = { status: 'crashed', error };
  }

  if (runId === undefined) {
    // The search was interrupted (it throws, without a summary): nothing to record the trial on.
    if (parent.status !== 'running') return { ...outcome, runId: '' };
    // No run was started over there: the experiment records the trial itself.
    const run = logger.startRun({
      parent,
      name: request.name,
      experiment: request.experiment,
      activate: false,
      config: request.params as Record<string, ConfigValue>,
      tags: { trial_index: String(request.index) },
    });
    await run.finish(outcome.status, outcome.error === undefined ? undefined : errorFromInfo(outcome.error));
    return { ...outcome, runId: run.id };
  }
  if (outcome.status === 'crashed') await finishCrashed(logger, parent, runId, outcome.error!);
  return { ...outcome, runId };
}

/** Finishes the dead process's run `crashed` through this process's logger (resuming it), or says why it cannot. */
async function finishCrashed(logger: Logger, parent: Run, runId: string, error: ErrorInfo): Promise<void> {
  let run: Run;
  try {
    run = logger.startRun({ runId, parent, activate: false });
  } catch (thrown) {
    process.stderr.write(
      `runtel: ${error.message}; its run ${runId} stays running: the experiment's logger cannot resume it ` +
        `(${thrown instanceof Error ? thrown.message : String(thrown)}); \`runtel reap\` or the bridge's stale-after finishes it crashed\n`,
    );
    return;
  }
  await run.finish('crashed', errorFromInfo(error));
}
