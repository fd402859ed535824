// Where a run can be seen in a tracker's UI. A remote target publishes a link once it has created
// the run there; the console prints it and the JSONL store keeps it for `runtel show`. The targets
// and the backends that show links are siblings under a composite logger with no handle on each
// other, so the links go through this one process-wide channel.

export interface RunLink {
  /** The runtel run id. */
  runId: string;
  /** The tracker, as users name it: `MLflow`, `W&B`. */
  label: string;
  url: string;
}

type Listener = (link: RunLink) => void;

const listeners = new Set<Listener>();

export function publishRunLink(link: RunLink): void {
  for (const listener of listeners) {
    try {
      listener(link);
    } catch {
      // A link is a courtesy: a listener's failure must not reach the target that published it.
    }
  }
}

/** Calls `listener` with every link published from now on; returns the unsubscribe function. */
export function onRunLink(listener: Listener): () => void {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

/** MLflow's UI page of a run, or undefined when the tracking URI is not a web server (`file:`, `databricks`). */
export function mlflowRunUrl(trackingUri: string, experimentId: string, mlflowRunId: string): string | undefined {
  let url: URL;
  try {
    url = new URL(trackingUri);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  const base = url.toString().replace(/\/+$/, '');
  return `${base}/#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(mlflowRunId)}`;
}

/**
 * W&B's UI page of a run. The hosted API's `api.` host serves the app without it (as the W&B client
 * derives its app URL); a self-hosted server serves both on one address.
 */
export function wandbRunUrl(baseUrl: string, entity: string, project: string, wandbRunId: string): string {
  const url = new URL(baseUrl);
  url.username = '';
  url.password = '';
  if (url.hostname.startsWith('api.')) url.hostname = url.hostname.slice(4);
  const base = url.origin + url.pathname.replace(/\/+$/, '');
  return `${base}/${encodeURIComponent(entity)}/${encodeURIComponent(project)}/runs/${encodeURIComponent(wandbRunId)}`;
}
