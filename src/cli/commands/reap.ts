// `runtel reap`: finish the runs whose process died without finishing them (kill -9, the OOM
// killer, a node that went away), for the runs nobody watches: in the JSONL store it writes the
// missing `run_finished crashed`; in MLflow it sets RUNNING runs made by runtel whose heartbeat is
// too old to FAILED with the tag runtel.end_reason=crashed.

import { Command, Option } from 'commander';
import { join } from 'node:path';
import { EVENTS_FILE, listRuns } from '../../backends/jsonl/store.js';
import { crashedFinish, liveness } from '../../backends/jsonl/liveness.js';
import { openForAppend } from '../../backends/jsonl/JsonlLogger.js';
import { encodeEvent } from '../../backends/jsonl/codec.js';
import { getStringFromEnv } from '../../core/env.js';
import { formatDuration } from '../../core/format.js';
import { cliStaleAfter } from '../liveness.js';
import { CliError, dirOption, existingStoreDir, formatTime, helpText, integerArg } from '../shared.js';

interface ReapOptions {
  dir?: string;
  mlflow?: boolean;
  trackingUri?: string;
  experiment?: string;
  staleAfter?: number;
  dryRun?: boolean;
}

/** One run reaped (or, with --dry-run, that would be). */
export interface Reaped {
  where: 'store' | 'mlflow';
  id: string;
  name: string;
  experiment: string;
  lastSign: number;
  reason: string;
}

export function reapCommand(): Command {
  return new Command('reap')
    .summary('finish runs whose process died without finishing them (crashed)')
    .description(
      'Find runs left running by a process that died without finishing them (kill -9, the OOM killer, a lost node) ' +
        'and finish them crashed. In the local store: a run whose process is gone (checked on the host that wrote it; ' +
        'elsewhere, nothing written for --stale-after) gets the missing run_finished crashed. With --mlflow: RUNNING ' +
        'runs tagged runtel.run_id whose runtel.heartbeat tag (else start time) is older than --stale-after become ' +
        'FAILED with the tag runtel.end_reason=crashed. Runs runtel did not make are never touched.',
    )
    .addOption(dirOption())
    .addOption(new Option('--mlflow', 'reap MLflow runs (the store only when --dir is given too)'))
    .option('--tracking-uri <uri>', 'the MLflow server (default: $MLFLOW_TRACKING_URI)')
    .option('-e, --experiment <name>', 'only runs of this experiment')
    .option('--stale-after <ms>', 'silence after which a run counts as crashed (default: 3 heartbeat intervals; at least 2)', integerArg(1))
    .option('--dry-run', 'list what would be finished, change nothing')
    .addHelpText(
      'after',
      helpText(
        'The heartbeat interval is $RUNTEL_HEARTBEAT_INTERVAL_MILLIS (default 30000): use the one the training processes use. ' +
          'A run reaped that turns out to be alive is not lost: its data still arrives, and its own finish replaces crashed.',
        'Exit code 0 also when nothing was found; the lines list each run reaped.',
      ),
    )
    .action(async (options: ReapOptions) => {
      const reaped = await reap(options);
      process.stdout.write(renderReaped(reaped, options.dryRun === true));
    });
}

export async function reap(options: ReapOptions): Promise<Reaped[]> {
  const staleAfterMillis = cliStaleAfter(options.staleAfter);
  const out: Reaped[] = [];
  const store = options.mlflow !== true || options.dir !== undefined;
  if (store) out.push(...(await reapStore(existingStoreDir(options.dir), staleAfterMillis, options)));
  if (options.mlflow === true) {
    if (options.trackingUri !== undefined) process.env.MLFLOW_TRACKING_URI = options.trackingUri;
    if (getStringFromEnv('MLFLOW_TRACKING_URI') === undefined) throw new CliError('reap --mlflow needs the MLflow server: pass --tracking-uri <uri> or set MLFLOW_TRACKING_URI');
    out.push(...(await reapMlflow(staleAfterMillis, options)));
  }
  return out;
}

async function reapStore(dir: string, staleAfterMillis: number, options: ReapOptions): Promise<Reaped[]> {
  const out: Reaped[] = [];
  for (const run of listRuns(dir)) {
    if (options.experiment !== undefined && run.record.experiment !== options.experiment) continue;
    const alive = liveness(run, { staleAfterMillis });
    if (alive?.state !== 'crashed') continue;
    if (options.dryRun !== true) {
      const handle = await openForAppend(join(run.dir, EVENTS_FILE));
      try {
        await handle.appendFile(`${encodeEvent(crashedFinish(run, alive))}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    out.push({ where: 'store', id: run.record.id, name: run.record.name, experiment: run.record.experiment, lastSign: alive.lastSign, reason: alive.reason! });
  }
  return out;
}

async function reapMlflow(staleAfterMillis: number, options: ReapOptions): Promise<Reaped[]> {
  const { MlflowClient } = await import('../../mlflow/MlflowClient.js');
  const { RUNTEL_END_REASON_TAG, RUNTEL_HEARTBEAT_TAG, RUNTEL_RUN_ID_TAG } = await import('../../mlflow/MlflowTarget.js');
  const client = new MlflowClient({ keepProcessAlive: true });
  const out: Reaped[] = [];
  try {
    const experiments = await client.searchExperiments();
    const ids = [...experiments].filter(([, name]) => options.experiment === undefined || name === options.experiment).map(([id]) => id);
    const now = Date.now();
    for (let i = 0; i < ids.length; i += 100) {
      for (const run of await client.searchRuns(ids.slice(i, i + 100), "attributes.status = 'RUNNING'")) {
        const tags = new Map((run.data.tags ?? []).map((t) => [t.key, t.value]));
        const runtelId = tags.get(RUNTEL_RUN_ID_TAG);
        // Only runs runtel made: they heartbeat. Anyone else's RUNNING run is theirs to judge.
        if (runtelId === undefined || run.info.status !== 'RUNNING') continue;
        const beat = Number(tags.get(RUNTEL_HEARTBEAT_TAG));
        const lastSign = Math.max(Number.isFinite(beat) ? beat : 0, Number(run.info.start_time ?? 0));
        if (now - lastSign < staleAfterMillis) continue;
        const heard = Number.isFinite(beat) ? `last heartbeat ${formatDuration(now - beat)} ago` : `no heartbeat since its start ${formatDuration(now - lastSign)} ago`;
        if (options.dryRun !== true) {
          await client.logBatch({ run_id: run.info.run_id, tags: [{ key: RUNTEL_END_REASON_TAG, value: 'crashed' }] });
          await client.updateRun({ run_id: run.info.run_id, status: 'FAILED', end_time: Math.floor(lastSign) });
        }
        out.push({
          where: 'mlflow',
          id: run.info.run_id,
          name: run.info.run_name ?? tags.get('mlflow.runName') ?? runtelId,
          experiment: experiments.get(run.info.experiment_id) ?? run.info.experiment_id,
          lastSign,
          reason: heard,
        });
      }
    }
  } finally {
    await client.close();
  }
  return out;
}

export function renderReaped(reaped: readonly Reaped[], dryRun: boolean): string {
  const verb = dryRun ? 'would finish' : 'finished';
  const lines = reaped.map((r) => `${verb} crashed: ${r.where === 'store' ? 'store' : 'MLflow'} run ${r.name} (${r.id.slice(0, 8)}, experiment ${r.experiment}), last alive ${formatTime(r.lastSign)}: ${r.reason}`);
  lines.push(reaped.length === 0 ? 'no crashed runs found' : `${reaped.length} run${reaped.length === 1 ? '' : 's'} ${dryRun ? 'would be finished' : 'finished'} crashed${dryRun ? ' (dry run: nothing changed)' : ''}`);
  return lines.join('\n') + '\n';
}
