// Backend and network failures never reach training code: they come here, are counted, and the
// default handler warns once per kind of failure.

export interface BackendFailure {
  /** The backend's name (`jsonl`, `mlflow`, …). */
  backend: string;
  /** What was being done: `onEvent`, `forceFlush`, `shutdown`, or a backend-specific operation. */
  operation: string;
  error: unknown;
}

export type BackendErrorHandler = (failure: BackendFailure) => void;

/** Counts failures by `backend:operation` and warns on stderr the first time each kind occurs. */
export class FailureReporter {
  private readonly _counts = new Map<string, number>();
  private _handler: BackendErrorHandler | undefined;

  constructor(handler?: BackendErrorHandler) {
    this._handler = handler;
  }

  report(failure: BackendFailure): void {
    const kind = `${failure.backend}:${failure.operation}`;
    const count = (this._counts.get(kind) ?? 0) + 1;
    this._counts.set(kind, count);
    if (this._handler !== undefined) {
      try {
        this._handler(failure);
      } catch {
        // A throwing handler must not break delivery to the other backends.
      }
      return;
    }
    if (count === 1) {
      const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
      process.stderr.write(`runtel: backend ${failure.backend} failed in ${failure.operation}: ${message} (further failures of this kind are counted, not printed)\n`);
    }
  }

  /** Failure counts by `backend:operation`. */
  counts(): Record<string, number> {
    return Object.fromEntries(this._counts);
  }
}
