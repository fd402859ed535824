// The entry of a trial process (`isolation: 'process'`), forked by the experiment with its parent
// run's childEnv(): it starts the trial's run with createLoggerFromEnv (a child of the experiment's
// run through RUNTEL_PARENT_RUN_ID), runs the trial module's default export and reports the outcome
// over the IPC channel. When the channel closes first, the experiment's process is gone (killed,
// crashed): the trial stops too, its run finished `killed`, rather than run on unwatched.

import { createLoggerFromEnv } from '../backends/createLoggerFromEnv.js';
import { toErrorInfo } from '../core/events.js';
import { configureProcessExit, finishAllRuns } from '../core/processExit.js';
import type { Run } from '../core/types.js';
import type { TrialReport, TrialRequest } from './processTrial.js';
import type { TrialFunction } from './trial.js';
import { runTrialBody } from './trial.js';

let reported = false;
let trialRun: Run | undefined;

function report(message: TrialReport): Promise<void> {
  return new Promise((done) => {
    if (!process.connected) return done();
    // The callback runs once the message is handed to the channel (or sending failed: the experiment is gone).
    process.send!(message, undefined, {}, () => done());
  });
}

async function loadTrial(moduleUrl: string): Promise<TrialFunction<unknown>> {
  const trial = ((await import(moduleUrl)) as { default?: unknown }).default;
  if (typeof trial !== 'function') {
    throw new TypeError(`the trial module ${moduleUrl} must have a default export that is the trial function (params, run, info) => objective, got ${typeof trial}`);
  }
  return trial as TrialFunction<unknown>;
}

async function host(request: TrialRequest): Promise<void> {
  const logger = createLoggerFromEnv();
  const run = logger.startRun({
    name: request.name,
    experiment: request.experiment,
    activate: false,
    config: request.params as Record<string, unknown>,
    tags: { trial_index: String(request.index) },
  });
  trialRun = run;
  // The run reaches the backends before the trial can crash, so the experiment can finish it `crashed`.
  await logger.forceFlush();
  await report({ type: 'started', runId: run.id });
  const info = { index: request.index, total: request.total, name: request.name };
  // Imported inside the trial: a module that fails to load fails this trial, on its run.
  const outcome = await runTrialBody(logger, run, async (params, r, i) => (await loadTrial(request.module))(params, r, i), request.params, info, request.objective);
  // Delivered (within the flush deadline) before the experiment counts the trial as done.
  await logger.shutdown();
  reported = true;
  await report({ type: 'result', ...outcome });
  // Whatever the trial left open (timers, sockets) must not keep this process alive.
  process.exit(0);
}

if (process.send === undefined) {
  process.stderr.write('runtel: trialHost is started by Experiment.run with isolation: "process", not directly\n');
  process.exit(2);
}
// The trial process belongs to runtel: its signal and crash handlers finish the trial's run, whatever
// RUNTEL_EXIT_HANDLERS says for the experiment's own process.
configureProcessExit({ enabled: true });
// Only while the trial's run is running: once it is finished (killed by a signal, say), an error the
// trial throws on its way out is not the trial's outcome.
const onUncaught = (error: unknown): void => {
  if (trialRun?.status === 'running') void report({ type: 'uncaught', error: toErrorInfo(error) });
};
process.on('uncaughtExceptionMonitor', onUncaught);
process.on('unhandledRejection', onUncaught);
process.once('disconnect', () => {
  if (reported) return;
  void finishAllRuns('killed', new Error(`the experiment's process went away (its IPC channel closed) while trial process ${process.pid} was running`)).finally(() => process.exit(1));
});
process.once('message', (request: TrialRequest) => {
  host(request).catch((error: unknown) => {
    // Only runtel itself can fail here (the trial's own errors are its outcome): the run fails with it.
    void report({ type: 'uncaught', error: toErrorInfo(error) }).finally(() => {
      void finishAllRuns('failed', error).finally(() => process.exit(1));
    });
  });
});
