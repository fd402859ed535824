import { describe, expect, it } from 'vitest';
import { InMemoryLogger, activeRun, withRun, flattenParams } from '../../src/index.js';
import type { Run } from '../../src/index.js';

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('withRun', () => {
  it('finishes success when a sync function returns, and returns its value', async () => {
    const logger = new InMemoryLogger();
    const value = await withRun(logger, { name: 'sync' }, (run) => {
      run.logMetrics({ a: 1 });
      expect(activeRun()).toBe(run);
      return 42;
    });
    expect(value).toBe(42);
    expect(logger.getRun('sync')!.status).toBe('success');
    expect(activeRun()).toBeUndefined();
  });

  it('finishes success when an async function resolves', async () => {
    const logger = new InMemoryLogger();
    await withRun(logger, { name: 'async' }, async (run) => {
      await tick();
      expect(activeRun()).toBe(run);
    });
    expect(logger.getRun('async')!.status).toBe('success');
  });

  it('a throw marks the run failed with the error recorded, then rethrows', async () => {
    const logger = new InMemoryLogger();
    const boom = new RangeError('boom');
    await expect(withRun(logger, { name: 'sync-throw' }, () => { throw boom; })).rejects.toBe(boom);
    await expect(withRun(logger, { name: 'async-throw' }, async () => { await tick(); throw boom; })).rejects.toBe(boom);
    for (const name of ['sync-throw', 'async-throw']) {
      const rec = logger.getRun(name)!;
      expect(rec.status).toBe('failed');
      expect(rec.error).toMatchObject({ type: 'RangeError', message: 'boom' });
      expect(rec.error!.stack).toContain('boom');
    }
  });

  it('non-Error throws are recorded too', async () => {
    const logger = new InMemoryLogger();
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- what this test is about
    await expect(withRun(logger, { name: 's' }, () => { throw 'plain'; })).rejects.toBe('plain');
    expect(logger.getRun('s')!.error).toEqual({ type: 'string', message: 'plain' });
  });

  it('a run the function finished itself keeps its status', async () => {
    const logger = new InMemoryLogger();
    await withRun(logger, { name: 'k' }, async (run) => { await run.finish('killed'); });
    expect(logger.getRun('k')!.status).toBe('killed');
  });
});

describe('nesting', () => {
  it('nested runs take the active run as parent across await', async () => {
    const logger = new InMemoryLogger();
    await withRun(logger, { name: 'parent' }, async (parent) => {
      await tick();
      await withRun(logger, { name: 'child', nested: true }, async (child) => {
        expect(child.parentId).toBe(parent.id);
        await tick();
        await withRun(logger, { name: 'grandchild', nested: true }, (g) => {
          expect(g.parentId).toBe(child.id);
        });
        expect(activeRun()).toBe(child);
      });
      expect(activeRun()).toBe(parent);
    });
    expect(logger.getRun('grandchild')!.parentId).toBe(logger.getRun('child')!.id);
  });

  it('parallel branches in Promise.all each get the right parent', async () => {
    const logger = new InMemoryLogger();
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        withRun(logger, { name: `p${i}` }, async () => {
          await tick();
          await Promise.all([0, 1].map((j) => withRun(logger, { name: `p${i}-c${j}`, nested: true }, async (run) => {
            await new Promise((r) => setTimeout(r, (3 - i) * 2 + j));
            run.logMetrics({ i, j });
            return run;
          })));
        }),
      ),
    );
    for (const i of [0, 1, 2, 3]) {
      const parent = logger.getRun(`p${i}`)!;
      expect(parent.parentId).toBeUndefined();
      for (const j of [0, 1]) {
        const child = logger.getRun(`p${i}-c${j}`)!;
        expect(child.parentId).toBe(parent.id);
        expect(child.metrics.i![0]!.value).toBe(i);
      }
    }
  });

  it('an explicit parent wins over the active run; without nested a run is top-level', async () => {
    const logger = new InMemoryLogger();
    const other = logger.startRun({ name: 'other' });
    await withRun(logger, { name: 'active' }, () => {
      expect(logger.startRun({ name: 'explicit', parent: other, nested: true }).parentId).toBe(other.id);
      expect(logger.startRun({ name: 'top' }).parentId).toBeUndefined();
    });
  });
});

describe('await using', () => {
  it('disposes as success unless already finished', async () => {
    const logger = new InMemoryLogger();
    {
      await using run = logger.startRun({ name: 'disposed' });
      run.logMetrics({ a: 1 });
    }
    {
      await using run = logger.startRun({ name: 'failed-first' });
      await run.finish('failed', new Error('x'));
    }
    expect(logger.getRun('disposed')!.status).toBe('success');
    expect(logger.getRun('failed-first')!.status).toBe('failed');
  });
});

describe('run identity and steps', () => {
  it('ids are 32 lowercase hex and unique; names default from the id', () => {
    const logger = new InMemoryLogger();
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const run = logger.startRun();
      expect(run.id).toMatch(/^[0-9a-f]{32}$/);
      expect(run.name).toBe(`run-${run.id.slice(0, 8)}`);
      ids.add(run.id);
    }
    expect(ids.size).toBe(100);
  });

  it('experiment defaults to RUNTEL_EXPERIMENT, else "default"', () => {
    const logger = new InMemoryLogger();
    expect(logger.startRun().experiment).toBe('default');
    process.env.RUNTEL_EXPERIMENT = 'from-env';
    try {
      expect(logger.startRun().experiment).toBe('from-env');
      expect(logger.startRun({ experiment: 'explicit' }).experiment).toBe('explicit');
    } finally {
      delete process.env.RUNTEL_EXPERIMENT;
    }
  });

  it('default step is one more than the largest step logged; steps may arrive in any order', () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun();
    run.logMetrics({ a: 0 });
    run.logMetrics({ a: 1 });
    run.logMetrics({ a: 10 }, { step: 10 });
    run.logMetrics({ a: 5 }, { step: 5 });
    run.logMetrics({ a: 11 });
    expect(logger.getRun(run.id)!.metrics.a!.map((s) => [s.step, s.value])).toEqual([[0, 0], [1, 1], [10, 10], [5, 5], [11, 11]]);
  });

  it('timestamps default to now and accept numbers and Dates', () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun();
    const before = Date.now();
    run.logMetrics({ a: 1 });
    run.logMetrics({ a: 2 }, { timestamp: 1000 });
    run.logMetrics({ a: 3 }, { timestamp: new Date(2000) });
    const samples = logger.getRun(run.id)!.metrics.a!;
    expect(samples[0]!.timestamp).toBeGreaterThanOrEqual(before);
    expect(samples[1]!.timestamp).toBe(1000);
    expect(samples[2]!.timestamp).toBe(2000);
  });

  it('the caller may reuse its values object', () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun();
    const values = { loss: 1 };
    run.logMetrics(values);
    values.loss = 2;
    run.logMetrics(values);
    expect(logger.getRun(run.id)!.metrics.loss!.map((s) => s.value)).toEqual([1, 2]);
  });

  it('resume goes back to running, keeps params write-once and continues the step counter', async () => {
    const logger = new InMemoryLogger();
    const first = logger.startRun({ name: 'r', config: { lr: 0.1 } });
    first.logMetrics({ a: 1 }, { step: 7 });
    await first.finish('killed');
    const resumed: Run = logger.startRun({ runId: first.id });
    expect(resumed.id).toBe(first.id);
    expect(resumed.name).toBe('r');
    expect(resumed.status).toBe('running');
    expect(logger.getRun(first.id)!.status).toBe('running');
    resumed.logMetrics({ a: 2 });
    expect(logger.getRun(first.id)!.metrics.a!.map((s) => s.step)).toEqual([7, 8]);
    expect(() => resumed.logParams({ lr: 0.2 })).toThrow('already "0.1"');
    await resumed.finish();
    expect(logger.getRun(first.id)!.status).toBe('success');
    expect(() => logger.startRun({ runId: 'f'.repeat(32) })).toThrow('cannot resume run');
  });
});

describe('params stringification', () => {
  it('flattens with "." and stringifies deterministically', () => {
    expect(
      flattenParams({
        lr: 0.001,
        big: 1e21,
        n: 10n,
        nan: NaN,
        flag: false,
        nothing: null,
        skipped: undefined,
        when: new Date(Date.UTC(2026, 0, 2)),
        layers: [64, 32],
        names: ['a', 'b'],
        mixed: [1, 'x', null, true, { k: 1 }],
        model: { optimizer: { name: 'adam', betas: [0.9, 0.999] }, empty: {} },
        text: 'plain',
      }),
    ).toEqual({
      lr: '0.001',
      big: '1e+21',
      n: '10',
      nan: 'NaN',
      flag: 'false',
      nothing: 'null',
      when: '2026-01-02T00:00:00.000Z',
      layers: '[64,32]',
      names: '["a","b"]',
      mixed: '[1,"x",null,true,{"k":"1"}]',
      'model.optimizer.name': 'adam',
      'model.optimizer.betas': '[0.9,0.999]',
      'model.empty': '{}',
      text: 'plain',
    });
  });
});
