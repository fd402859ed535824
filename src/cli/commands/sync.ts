// `runtel sync`: upload runs from the local store to MLflow (or W&B), idempotently.

import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findRun, listRuns, readRun } from '../../backends/jsonl/store.js';
import type { StoredRun } from '../../backends/jsonl/store.js';
import { withLiveness } from '../../backends/jsonl/liveness.js';
import { cliStaleAfter } from '../liveness.js';
import type { BackendFailure } from '../../core/errors.js';
import { syncRuns } from '../../sync/syncRuns.js';
import type { SyncProgress } from '../../sync/syncRuns.js';
import type { TargetError } from '../../delivery/TargetError.js';
import { getStringFromEnv } from '../../core/env.js';
import { CliError, dirOption, helpText, storeDir } from '../shared.js';

type Target = 'mlflow' | 'wandb';

interface SyncOptions {
  to: Target;
  dir?: string;
  progress: boolean;
  trackingUri?: string;
}

export function syncCommand(): Command {
  return new Command('sync')
    .summary('upload runs from the local store to MLflow or W&B')
    .description(
      'Replay runs from the local JSONL store (offline or air-gapped training) into MLflow or W&B: one run ' +
        '(id, id prefix or name, with its child runs), a run folder, or a whole store folder. Idempotent: ' +
        'run it twice and each run, param and metric point is there once. MLflow finds runs by their ' +
        'runtel.run_id tag; W&B skips the history lines it already has. A run left running whose process is gone ' +
        "(see 'runtel ls') is uploaded crashed: MLflow FAILED with runtel.end_reason=crashed, W&B completed with exit code 137.",
    )
    .argument('[run-or-dir]', 'a run id, id prefix or name in the store, a run folder, or a store folder (default: the whole store)')
    .addOption(new Option('--to <backend>', 'where to upload').choices(['mlflow', 'wandb']).makeOptionMandatory())
    .addOption(dirOption())
    .option('--tracking-uri <uri>', 'the MLflow server (default: $MLFLOW_TRACKING_URI)')
    .option('--no-progress', 'no progress bar')
    .addHelpText(
      'after',
      helpText(
        'Configured by the usual environment: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN; ' +
          'WANDB_API_KEY, WANDB_BASE_URL, WANDB_PROJECT, WANDB_ENTITY.',
      ),
    )
    .action(async (target: string | undefined, options: SyncOptions) => {
      if (options.trackingUri !== undefined) process.env.MLFLOW_TRACKING_URI = options.trackingUri;
      if (options.to === 'mlflow' && getStringFromEnv('MLFLOW_TRACKING_URI') === undefined) {
        throw new CliError('sync --to mlflow needs the MLflow server: pass --tracking-uri <uri> or set MLFLOW_TRACKING_URI');
      }
      const staleAfterMillis = cliStaleAfter(undefined);
      const runs = selectRuns(target, options.dir).map((run) => withLiveness(run, { staleAfterMillis }));
      if (runs.length === 0) throw new CliError('nothing to sync: no runs found');
      const bar = options.progress && process.stderr.isTTY !== false
        ? new cliProgress.SingleBar({ format: 'sync → ' + options.to + ' [{bar}] {percentage}% | {value}/{total} points | runs {runs}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
        : undefined;
      bar?.start(1, 0, { runs: `0/${runs.length}` });
      const failures = await upload(options.to, runs, {
        onProgress: (p) => {
          bar?.setTotal(Math.max(1, p.pointsTotal));
          bar?.update(p.pointsDone, { runs: `${p.runsDone}/${p.runsTotal}` });
        },
        onRetry: retryNotice(bar),
      });
      bar?.stop();
      const points = runs.reduce((n, r) => n + Object.values(r.record.metrics).reduce((m, s) => m + s.length, 0), 0);
      process.stdout.write(`synced ${runs.length} run${runs.length === 1 ? '' : 's'} (${points} metric points) to ${options.to}\n`);
      if (failures.length > 0) {
        for (const f of failures) process.stderr.write(`runtel: ${f.operation}: ${f.error instanceof Error ? f.error.message : String(f.error)}\n`);
        throw new CliError(`${failures.length} failure${failures.length === 1 ? '' : 's'} while syncing; the local store is unchanged, run sync again`);
      }
    });
}

function selectRuns(target: string | undefined, dir: string | undefined): StoredRun[] {
  if (target === undefined) return listRuns(storeDir(dir));
  const path = resolve(target);
  if (existsSync(join(path, 'events.jsonl'))) return [readRun(path)!];
  if (existsSync(path) && dir === undefined) return listRuns(path);
  const run = findRun(storeDir(dir), target);
  if (run === undefined) throw new CliError(`no run ${JSON.stringify(target)} in ${storeDir(dir)}`);
  // A run comes with its children (a search uploads with its trials).
  const all = listRuns(storeDir(dir));
  const ids = new Set([run.record.id]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of all) {
      if (r.record.parentId !== undefined && ids.has(r.record.parentId) && !ids.has(r.record.id)) {
        ids.add(r.record.id);
        grew = true;
      }
    }
  }
  return all.filter((r) => ids.has(r.record.id));
}

type Bar = cliProgress.SingleBar | undefined;

interface UploadHooks {
  onProgress: (progress: SyncProgress) => void;
  onRetry: (error: TargetError, attempt: number) => void;
}

async function upload(to: Target, runs: StoredRun[], hooks: UploadHooks): Promise<BackendFailure[]> {
  if (to === 'mlflow') {
    const { MlflowBackend } = await import('../../mlflow/MlflowBackend.js');
    // A replay is no sign of life: no runtel.heartbeat tags.
    const backend = new MlflowBackend({ findExistingRuns: true, sourceTags: false, keepProcessAlive: true, onRetry: hooks.onRetry, heartbeatIntervalMillis: Infinity });
    return (await syncRuns(runs, backend, { onProgress: hooks.onProgress })).failures;
  }
  const { syncRunsToWandb } = await import('../../wandb/sync.js');
  let runsDone = 0;
  const result = await syncRunsToWandb(runs, { onRetry: hooks.onRetry }, (p) => {
    hooks.onProgress({ runsDone, runsTotal: runs.length, pointsTotal: p.totalPoints, pointsDone: p.sentPoints + p.skippedPoints });
  });
  runsDone = runs.length;
  return result.failures;
}

/** Says, at most every few seconds, that the target does not answer and why, instead of a still bar. */
function retryNotice(bar: Bar): (error: TargetError, attempt: number) => void {
  let last = 0;
  return (error, attempt) => {
    const now = Date.now();
    if (now - last < 5000) return;
    last = now;
    const line = `runtel: ${error.message}; retrying (attempt ${attempt + 1})\n`;
    if (bar !== undefined) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(line);
  };
}
