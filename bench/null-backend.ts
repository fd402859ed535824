// A RunBackend that counts what it gets and keeps nothing: the target of bench/bridge-ingest's (C) cases.

import type { RunBackend } from '../src/core/RunBackend.js';
import type { RunEvent } from '../src/core/events.js';

export class NullBackend implements RunBackend {
  readonly name = 'null';
  metricPoints = 0;
  onEvent(event: RunEvent): void {
    if (event.type === 'metrics') this.metricPoints += Object.keys(event.values).length;
  }
  stats(): { queuedPoints: number } {
    return { queuedPoints: 0 };
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
