// What a DeliveryBackend tells the user: each kind of failure once, the start of an outage when it
// happens (with the target, the error and that delivery goes on in the background), and at shutdown
// what was not delivered, in one line.

import type { BackendFailure } from '../core/errors.js';
import type { TargetError } from './TargetError.js';

export class DeliveryReports {
  private _report: (failure: BackendFailure) => void = () => undefined;
  private readonly _reported = new Set<string>();
  private _outage = false;
  private _lastError: unknown;

  constructor(
    private readonly _backend: string,
    private readonly _location: string,
  ) {}

  bind(report: (failure: BackendFailure) => void): void {
    this._report = report;
  }

  report(failure: BackendFailure): void {
    this._report(failure);
  }

  /** Reports once per `kind`. */
  once(kind: string, operation: string, error: unknown): void {
    if (this._reported.has(kind)) return;
    this._reported.add(kind);
    this._report({ backend: this._backend, operation, error });
  }

  /** A request failed for good: once per operation and error code. */
  failure(error: unknown, operation: string): void {
    this._lastError = error;
    this.once(`${operation}:${(error as Partial<TargetError>).code ?? 'ERROR'}`, operation, error);
  }

  /** A request will be retried: the first retry of an outage is reported (operation `retry`), as it happens. */
  retrying(error: TargetError, retryTimeoutMillis: number): void {
    this._lastError = error;
    if (this._outage) return;
    this._outage = true;
    this._report({
      backend: this._backend,
      operation: 'retry',
      error: new Error(`${this._location}: ${withoutTarget(error)}; retrying in the background for up to ${formatMillis(retryTimeoutMillis)} (RUNTEL_RETRY_TIMEOUT_MILLIS), and the local run log keeps every point`),
    });
  }

  /** Something was delivered: an outage (if any) is over, and the next one is reported again. */
  delivered(): void {
    this._outage = false;
  }

  /** Shutdown gave up on what was left. */
  abandoned(points: number, runs: number, timeoutMillis: number): void {
    const last = this._lastError instanceof Error ? `; last error: ${this._lastError.message}` : '';
    this._report({
      backend: this._backend,
      operation: 'shutdown',
      error: new Error(
        `${this._location}: ${points} metric point(s) of ${runs} run(s) not delivered within the ${timeoutMillis} ms flush deadline${last}. ` +
          `The local run log keeps them: \`runtel sync --to ${this._backend}\` uploads them later`,
      ),
    });
  }
}

/** The error's message without the target's name, which the location already says. */
function withoutTarget(error: TargetError): string {
  return error.message.startsWith(`${error.target} `) ? error.message.slice(error.target.length + 1) : error.message;
}

function formatMillis(millis: number): string {
  if (millis >= 3_600_000) return `${+(millis / 3_600_000).toFixed(1)} h`;
  if (millis >= 60_000) return `${+(millis / 60_000).toFixed(1)} min`;
  return `${+(millis / 1000).toFixed(1)} s`;
}
