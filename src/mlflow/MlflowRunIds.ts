// Which MLflow run a runtel run is, for its children: an id settles when the run is created (or
// found), so a child waits for its parent's creation without holding a request slot, and a child
// whose parent is created later (OTel pipelines reorder spans and records) waits a bounded time.

/** Runs whose ids are remembered (oldest forgotten first); about 150 bytes each. */
const MAX_REMEMBERED_IDS = 10_000;
/** How long an exporter's or the bridge's child waits for a parent whose start has not come. */
const PARENT_WAIT_MILLIS = 10_000;

interface IdEntry {
  id: Promise<string | undefined>;
  settle: (id: string | undefined) => void;
  settled: boolean;
}

export class MlflowRunIds {
  private readonly _ids = new Map<string, IdEntry>();

  has(runtelId: string): boolean {
    return this._ids.has(runtelId);
  }

  /** The MLflow id of a run once it exists (undefined if its creation failed or it is not known). */
  get(runtelId: string): Promise<string | undefined> {
    return this._ids.get(runtelId)?.id ?? Promise.resolve(undefined);
  }

  /** The MLflow id of a run whose creation has settled, else undefined at once. */
  async settled(runtelId: string): Promise<string | undefined> {
    const entry = this._ids.get(runtelId);
    return entry?.settled === true ? entry.id : undefined;
  }

  /** Records an id found elsewhere (a parent found by its tag), unless the run is known already. */
  learn(runtelId: string, mlflowId: string): void {
    if (this._ids.has(runtelId)) return;
    const entry = this._entry(runtelId, true);
    entry.settled = true;
    entry.settle(mlflowId);
  }

  /** `create`, with the run's id settling for its children when it is done (failed or not). */
  remembered(runtelId: string, create: () => Promise<void>, mlflowId: () => string | undefined): () => Promise<void> {
    const entry = this._entry(runtelId, true);
    return async () => {
      try {
        await create();
      } finally {
        entry.settled = true;
        entry.settle(mlflowId());
      }
    };
  }

  /**
   * Settles when the parent exists, or after PARENT_WAIT_MILLIS. `waitForUnseen`: wait also for a
   * parent never seen here (the exporters and the bridge; in-process logging knows its parents).
   */
  after(parentRuntelId: string | undefined, waitForUnseen: boolean): { after?: Promise<unknown> } {
    if (parentRuntelId === undefined) return {};
    if (!waitForUnseen && !this._ids.has(parentRuntelId)) return {};
    let timer: NodeJS.Timeout | undefined;
    const after = Promise.race([
      this._entry(parentRuntelId, false).id,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, PARENT_WAIT_MILLIS);
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    return { after };
  }

  /** A pending entry is reused; a settled one is replaced when the run is created again. */
  private _entry(runtelId: string, creating: boolean): IdEntry {
    const known = this._ids.get(runtelId);
    if (known !== undefined && !(creating && known.settled)) return known;
    let settle!: (id: string | undefined) => void;
    const entry: IdEntry = { id: new Promise<string | undefined>((resolve) => (settle = resolve)), settle, settled: false };
    this._ids.delete(runtelId);
    this._ids.set(runtelId, entry);
    if (this._ids.size > MAX_REMEMBERED_IDS) this._ids.delete(this._ids.keys().next().value!);
    return entry;
  }
}
