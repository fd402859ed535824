// A run's UpsertBucket input: config (params typed back, runtel's identity, W&B's step metric
// definitions), tags, group, job type and display name.

import { stepMetricDefinitions, unflattenParams, wandbRunId } from './history.js';
import type { UpsertBucketInput } from './WandbClient.js';
import type { WandbRunState } from './WandbTarget.js';

const MAX_TAG_LENGTH = 64;

export function upsertInput(run: WandbRunState, where: { entity: string | undefined; project: string }, parseParamValues: boolean, state?: string): UpsertBucketInput {
  const started = run.started;
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(unflattenParams(run.params, parseParamValues))) config[key] = { value };
  const extra: Record<string, unknown> = { runtel_run_id: run.runtelId, runtel_experiment: started.experiment };
  if (started.parentId !== undefined) {
    extra.parent_run_id = wandbRunId(started.parentId);
    extra.runtel_parent_run_id = started.parentId;
  }
  if (Object.keys(run.tags).length > 0) extra.runtel_tags = { ...run.tags };
  if (run.finish !== undefined) {
    extra.runtel_status = run.finish.status;
    if (run.finish.error !== undefined) extra.runtel_error = `${run.finish.error.type}: ${run.finish.error.message}`.slice(0, 2000);
  }
  for (const [key, value] of Object.entries(extra)) config[key] = { value };
  config._wandb = { value: { m: stepMetricDefinitions(run.history.stepMetric) } };
  const tags = Object.entries(run.tags)
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .filter((tag) => tag.length <= MAX_TAG_LENGTH);
  return {
    name: run.wandbId,
    project: where.project,
    entity: where.entity,
    displayName: started.name,
    groupName: run.group,
    jobType: run.jobType,
    config: JSON.stringify(config),
    tags,
    state,
  };
}
