// One MLflow target's experiments by name: each looked up (or created) once, a failure not kept so
// the next run tries again, and which of them this target created: no run can be in those yet, so the
// first run made there is not looked for first.
import type { MlflowClient } from './MlflowClient.js';

export class MlflowExperiments {
  private readonly _ids = new Map<string, Promise<string>>();
  private readonly _created = new Set<string>();

  constructor(private readonly _client: MlflowClient) {}

  /** The experiment's id, created if it does not exist. */
  id(name: string): Promise<string> {
    let id = this._ids.get(name);
    if (id === undefined) {
      id = this._client.ensureExperiment(name).then(({ experimentId, created }) => {
        if (created) this._created.add(experimentId);
        return experimentId;
      });
      this._ids.set(name, id);
      id.catch(() => this._ids.delete(name));
    }
    return id;
  }

  /** True once, for the first run made in an experiment this target created. */
  takeCreated(experimentId: string): boolean {
    return this._created.delete(experimentId);
  }
}
