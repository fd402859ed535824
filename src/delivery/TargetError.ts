// A failed call to a remote target (MLflow, W&B). Each target subclasses it for its own message
// style and, where the target's server has quirks, its own notion of what is worth retrying.

export interface TargetErrorInit {
  /** The target's display name: `MLflow`, `W&B`. */
  target: string;
  /** What was being done: `log-batch`, `file_stream`, … */
  operation: string;
  /** HTTP status; 0 for a connection error or a timeout. */
  status: number;
  /** The server's error code (MLflow's `error_code`), `HTTP_<status>`, or a connection error code such as `ECONNREFUSED`. */
  code: string;
  message: string;
  retryAfterMillis?: number | undefined;
}

export class TargetError extends Error {
  readonly target: string;
  readonly operation: string;
  readonly status: number;
  readonly code: string;
  readonly retryAfterMillis: number | undefined;

  constructor(init: TargetErrorInit, formatted?: string) {
    super(formatted ?? `${init.target} ${init.operation}: ${init.status === 0 ? `unreachable (${init.code})` : `HTTP ${init.status} ${init.code}`}: ${init.message}`);
    this.name = 'TargetError';
    this.target = init.target;
    this.operation = init.operation;
    this.status = init.status;
    this.code = init.code;
    this.retryAfterMillis = init.retryAfterMillis;
  }

  /** 429, 5xx and connection errors pass; other 4xx are permanent. An aborted request (shutdown) is not retried. */
  get retryable(): boolean {
    if (this.code === ABORTED) return false;
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** The code of a request cut off because the client was closed (shutdown past its deadline). */
export const ABORTED = 'ABORTED';
