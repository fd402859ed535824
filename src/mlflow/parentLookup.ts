// The MLflow run of a parent that lives in another process (named by RUNTEL_PARENT_RUN_ID): found by
// its runtel.run_id tag, searching again for a bounded time while the parent may still be being created.

import type { MlflowClient } from './MlflowClient.js';

/** How long a child waits for a parent from the environment to appear in MLflow. */
export const INHERITED_PARENT_WAIT_MILLIS = 3000;

const sleep = (millis: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, millis).unref();
  });

/**
 * The parent's MLflow run id: looked up in the child's experiment (where childEnv() puts it), and
 * once more across all experiments at the end; undefined when it did not appear within `waitMillis`.
 * Failed searches count as "not yet": the child's own creation reports an unreachable server.
 */
export async function findInheritedParent(mlflow: MlflowClient, tagKey: string, experimentId: Promise<string>, parentRuntelId: string, waitMillis = INHERITED_PARENT_WAIT_MILLIS): Promise<string | undefined> {
  const deadline = Date.now() + waitMillis;
  const attempt = async (experimentIds: () => Promise<string[]>): Promise<string | undefined> => {
    const remaining = deadline - Date.now();
    const search = experimentIds().then((ids) => mlflow.findRunByTag(ids, tagKey, parentRuntelId));
    const timeout = sleep(Math.max(remaining, 100)).then(() => undefined);
    try {
      return (await Promise.race([search, timeout]))?.info.run_id;
    } catch {
      return undefined;
    } finally {
      search.catch(() => undefined);
    }
  };
  for (let pause = 100; ; pause = Math.min(pause * 2, 800)) {
    const found = await attempt(async () => [await experimentId]);
    if (found !== undefined) return found;
    if (Date.now() + pause >= deadline) break;
    await sleep(pause);
  }
  return attempt(async () => [...(await mlflow.searchExperiments()).keys()]);
}
