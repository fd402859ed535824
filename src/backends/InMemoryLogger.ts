// In-memory backend for tests (users' and ours): keeps every event and the runs rebuilt from them.

import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import { applyEvent } from '../core/RunRecord.js';
import type { RunRecord } from '../core/RunRecord.js';
import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';

export class InMemoryBackend implements RunBackend {
  readonly name = 'memory';
  /** Artifact records point at the logged files; staged model copies stay readable. */
  readonly retainsArtifactPaths = true;
  readonly events: RunEvent[] = [];
  private readonly _runs = new Map<string, RunRecord>();
  private _applied = 0;

  onEvent(event: RunEvent): void {
    // Only recorded here; runs are rebuilt when read, which keeps logging at one push per call.
    this.events.push(event);
  }

  /** The runs rebuilt from every event so far, by id. */
  get runs(): Map<string, RunRecord> {
    for (; this._applied < this.events.length; this._applied++) {
      const event = this.events[this._applied]!;
      this._runs.set(event.runId, applyEvent(this._runs.get(event.runId), event));
    }
    return this._runs;
  }

  /** Forgets everything recorded so far. */
  clear(): void {
    this.events.length = 0;
    this._runs.clear();
    this._applied = 0;
  }

  resume(runId: string): RunRecord | undefined {
    return this.runs.get(runId);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Records every event; `runs` and `getRun` give the rebuilt runs. */
export class InMemoryLogger extends BackendLogger {
  declare readonly backend: InMemoryBackend;

  constructor(options?: BackendLoggerOptions) {
    super(new InMemoryBackend(), options);
  }

  /** Every event received, in order. */
  get events(): readonly RunEvent[] {
    return this.backend.events;
  }

  /** Every run, in start order. */
  get runs(): RunRecord[] {
    return [...this.backend.runs.values()];
  }

  /** A run by id, or by name (the first run started with that name). */
  getRun(idOrName: string): RunRecord | undefined {
    return this.backend.runs.get(idOrName) ?? this.runs.find((r) => r.name === idOrName);
  }

  /** Forgets everything recorded so far. */
  reset(): void {
    this.backend.clear();
  }
}
