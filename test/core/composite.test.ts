import { describe, expect, it, vi } from 'vitest';
import { BackendLogger, CompositeLogger, InMemoryLogger, withRun } from '../../src/index.js';
import type { BackendFailure, Logger, Run, RunBackend, RunEvent, RunOptions } from '../../src/index.js';

class ThrowingBackend implements RunBackend {
  readonly name = 'thrower';
  seen: string[] = [];
  onEvent(event: RunEvent): void {
    this.seen.push(event.type);
    throw new Error(`cannot take ${event.type}`);
  }
  forceFlush(): Promise<void> {
    return Promise.reject(new Error('flush failed'));
  }
  shutdown(): Promise<void> {
    return Promise.reject(new Error('shutdown failed'));
  }
}

class OrderBackend implements RunBackend {
  constructor(readonly name: string, private readonly log: string[]) {}
  onEvent(event: RunEvent): void {
    this.log.push(`${this.name}:${event.type}`);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

describe('CompositeLogger', () => {
  it('fans out in order', async () => {
    const log: string[] = [];
    const composite = new CompositeLogger([new BackendLogger(new OrderBackend('a', log)), new BackendLogger(new OrderBackend('b', log))]);
    await withRun(composite, {}, (run) => run.logMetrics({ x: 1 }));
    expect(log).toEqual(['a:run_started', 'b:run_started', 'a:metrics', 'b:metrics', 'a:run_finished', 'b:run_finished']);
  });

  it('a backend that throws or fails never stops the others; failures are counted and reported', async () => {
    const failures: BackendFailure[] = [];
    const thrower = new ThrowingBackend();
    const before = new InMemoryLogger();
    const after = new InMemoryLogger();
    const composite = new CompositeLogger([before, new BackendLogger(thrower), after], { onError: (f) => failures.push(f) });
    await withRun(composite, { name: 'isolated', config: { lr: 1 } }, (run) => {
      for (let step = 0; step < 5; step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
    });
    await composite.shutdown();
    for (const logger of [before, after]) {
      const rec = logger.getRun('isolated')!;
      expect(rec.status).toBe('success');
      expect(rec.metrics.loss).toHaveLength(5);
      expect(rec.params).toEqual({ lr: '1' });
    }
    expect(thrower.seen).toEqual(['run_started', 'metrics', 'metrics', 'metrics', 'metrics', 'metrics', 'run_finished']);
    expect(composite.failureCounts()).toEqual({ 'thrower:onEvent': 7, 'thrower:forceFlush': 1, 'thrower:shutdown': 1 });
    expect(failures.every((f) => f.backend === 'thrower')).toBe(true);
  });

  it('the default handler warns once per kind of failure', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const composite = new CompositeLogger([new BackendLogger(new ThrowingBackend())]);
      const run = composite.startRun();
      for (let i = 0; i < 10; i++) run.logMetrics({ a: i });
      const warnings = write.mock.calls.map((c) => String(c[0])).filter((s) => s.includes('backend thrower failed in onEvent'));
      expect(warnings).toHaveLength(1);
      expect(composite.failureCounts()['thrower:onEvent']).toBe(11);
    } finally {
      write.mockRestore();
    }
  });

  it('a finish whose backend hangs resolves at the flush deadline', async () => {
    const hanging: RunBackend = { name: 'hang', onEvent: () => undefined, forceFlush: () => new Promise(() => undefined), shutdown: () => Promise.resolve() };
    const composite = new CompositeLogger([new BackendLogger(hanging)], { flushTimeoutMillis: 100, onError: () => undefined });
    const run = composite.startRun();
    const start = Date.now();
    await run.finish();
    expect(Date.now() - start).toBeGreaterThanOrEqual(90);
    expect(Date.now() - start).toBeLessThan(2000);
    expect(composite.failureCounts()).toEqual({ 'hang:forceFlush': 1 });
  });

  it('drives a Logger of a user that is not event-based', async () => {
    const calls: string[] = [];
    const foreign: Logger = {
      startRun(options?: RunOptions): Run {
        calls.push(`start:${options?.name}:${JSON.stringify(options?.config)}`);
        return {
          id: 'x', name: options?.name ?? '', experiment: 'e', parentId: undefined, status: 'running',
          childEnv: () => ({}), logParams: () => undefined, setTags: () => undefined, logArtifact: () => undefined, logModel: () => undefined,
          logMetrics: (v, o) => { calls.push(`metrics:${JSON.stringify(v)}@${o?.step}`); },
          finish: (s) => { calls.push(`finish:${s}`); return Promise.resolve(); },
          [Symbol.asyncDispose]: () => Promise.resolve(),
        };
      },
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    const composite = new CompositeLogger([foreign]);
    await withRun(composite, { name: 'n', config: { a: 1 } }, (run) => run.logMetrics({ m: 2 }, { step: 3 }));
    expect(calls).toEqual(['start:n:{"a":"1"}', 'metrics:{"m":2}@3', 'finish:success']);
  });

  it('shutdown finishes runs still running as killed and is idempotent', async () => {
    const memory = new InMemoryLogger();
    const composite = new CompositeLogger([memory]);
    const run = composite.startRun({ name: 'left-open' });
    const first = composite.shutdown();
    expect(composite.shutdown()).toBe(first);
    await first;
    expect(run.status).toBe('killed');
    expect(memory.getRun('left-open')!.status).toBe('killed');
    expect(() => composite.startRun()).toThrow('startRun after shutdown');
  });
});
