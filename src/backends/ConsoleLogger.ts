// One readable line per event, for humans watching a terminal.

import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { formatBytes, formatDuration, formatNumber } from '../core/format.js';

export interface ConsoleLoggerOptions extends BackendLoggerOptions {
  /** Where lines go. Default: standard error, so a program's standard output stays its own. */
  write?: (line: string) => void;
}

export class ConsoleBackend implements RunBackend {
  readonly name = 'console';
  private readonly _write: (line: string) => void;
  private readonly _names = new Map<string, { name: string; start: number }>();

  constructor(write?: (line: string) => void) {
    this._write = write ?? ((line) => process.stderr.write(line + '\n'));
  }

  onEvent(event: RunEvent): void {
    this._write(this.format(event));
  }

  /** The line printed for `event`. */
  format(event: RunEvent): string {
    const known = this._names.get(event.runId);
    const name = known?.name ?? event.runId.slice(0, 8);
    switch (event.type) {
      case 'run_started': {
        this._names.set(event.runId, { name: event.name, start: event.startTime });
        const where = [`id ${event.runId.slice(0, 8)}`, `experiment ${event.experiment}`];
        if (event.parentId !== undefined) where.push(`parent ${event.parentId.slice(0, 8)}`);
        const params = pairs(event.params);
        return `[runtel] ▶ ${event.name} ${event.resumed === true ? 'resumed' : 'started'} (${where.join(', ')})${params ? ` ${params}` : ''}`;
      }
      case 'params':
        return `[runtel]   ${name} params ${pairs(event.params)}`;
      case 'tags':
        return `[runtel]   ${name} tags ${pairs(event.tags)}`;
      case 'metrics': {
        const values = Object.entries(event.values).map(([k, v]) => `${k}=${formatNumber(v)}`);
        return `[runtel]   ${name} step ${event.step} ${values.join(' ')}`;
      }
      case 'artifact':
        return `[runtel]   ${name} artifact ${event.name} (${event.kind}, ${formatBytes(event.size)})`;
      case 'run_finished': {
        this._names.delete(event.runId);
        const took = known === undefined ? '' : ` in ${formatDuration(event.endTime - known.start)}`;
        const mark = event.status === 'success' ? '■' : '✗';
        const why = event.error === undefined ? '' : `: ${event.error.type}: ${event.error.message}`;
        return `[runtel] ${mark} ${name} ${event.status}${took}${why}`;
      }
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function pairs(record: Record<string, string>): string {
  return Object.entries(record)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

export class ConsoleLogger extends BackendLogger {
  constructor(options: ConsoleLoggerOptions = {}) {
    super(new ConsoleBackend(options.write), options);
  }
}
