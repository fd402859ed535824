import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Experiment, planTrials } from '../src/experiment/Experiment.js';
import type { SearchSpec } from '../src/experiment/Experiment.js';
import { InMemoryLogger } from '../src/backends/InMemoryLogger.js';
import { activeRun } from '../src/core/context.js';
import { lastMetricValues } from '../src/core/RunRecord.js';

function setup(options: { goal?: 'minimize' | 'maximize'; objective?: string } = {}) {
  const logger = new InMemoryLogger();
  const experiment = new Experiment({ logger, name: 'exp', ...options });
  return { logger, experiment };
}

describe('Experiment: trial plans', () => {
  it('runs the grid as a cartesian product, last key fastest', async () => {
    const { logger, experiment } = setup();
    const seen: Array<Record<string, unknown>> = [];
    const summary = await experiment.run({ grid: { lr: [0.1, 0.2], opt: ['sgd', 'adam', 'rms'] } }, (params) => {
      seen.push(params);
      return params.lr;
    });
    const expected = [
      { lr: 0.1, opt: 'sgd' },
      { lr: 0.1, opt: 'adam' },
      { lr: 0.1, opt: 'rms' },
      { lr: 0.2, opt: 'sgd' },
      { lr: 0.2, opt: 'adam' },
      { lr: 0.2, opt: 'rms' },
    ];
    expect(seen).toEqual(expected);
    expect(summary.trials.map((t) => t.params)).toEqual(expected);
    expect(summary.trials.map((t) => t.name)).toEqual(expected.map((_, i) => `exp-trial-${i}`));
    // Each trial run carries its params.
    const trial4 = logger.getRun('exp-trial-4')!;
    expect(trial4.params).toMatchObject({ lr: '0.2', opt: 'adam' });
    expect(trial4.experiment).toBe('exp');
  });

  it('draws the same random trials for the same seed, and different ones for another seed', () => {
    const space = { lr: { min: 1e-4, max: 1e-1, log: true }, layers: { min: 1, max: 4, integer: true }, act: ['relu', 'tanh'], drop: { min: 0, max: 0.5 } };
    const a = planTrials({ random: { n: 20, seed: 7, space } });
    const b = planTrials({ random: { n: 20, seed: 7, space } });
    const c = planTrials({ random: { n: 20, seed: 8, space } });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).toHaveLength(20);
    for (const p of a) {
      expect(p.lr).toBeGreaterThanOrEqual(1e-4);
      expect(p.lr).toBeLessThanOrEqual(1e-1);
      expect(Number.isInteger(p.layers)).toBe(true);
      expect(p.layers).toBeGreaterThanOrEqual(1);
      expect(p.layers).toBeLessThanOrEqual(4);
      expect(['relu', 'tanh']).toContain(p.act);
      expect(p.drop).toBeGreaterThanOrEqual(0);
      expect(p.drop).toBeLessThan(0.5);
    }
    // Over 20 draws both choices and several integers show up (a broken sampler would repeat one value).
    expect(new Set(a.map((p) => p.act)).size).toBe(2);
    expect(new Set(a.map((p) => p.layers)).size).toBeGreaterThan(2);
    // Log-uniform: about half of the draws fall below the geometric midpoint (~3.2e-3), far more than a linear draw would.
    expect(a.filter((p) => (p.lr as number) < 3.2e-3).length).toBeGreaterThan(4);
  });

  it('runs grid trials first, then random trials', async () => {
    const { experiment } = setup();
    const summary = await experiment.run({ grid: { a: [1, 2] }, random: { n: 3, seed: 1, space: { b: { min: 0, max: 1 } } } }, () => 0);
    expect(summary.trials).toHaveLength(5);
    expect(summary.trials.slice(0, 2).map((t) => t.params)).toEqual([{ a: 1 }, { a: 2 }]);
    for (const t of summary.trials.slice(2)) expect(Object.keys(t.params)).toEqual(['b']);
  });

  it('runs one trial with {} when neither grid nor random is given', async () => {
    const { logger, experiment } = setup();
    const seen: unknown[] = [];
    const summary = await experiment.run({}, (params) => {
      seen.push(params);
      return 3;
    });
    expect(seen).toEqual([{}]);
    expect(summary.trials).toHaveLength(1);
    expect(summary.best?.value).toBe(3);
    expect(logger.runs).toHaveLength(2);
  });

  it('describes the search space in the parent params', async () => {
    const logger = new InMemoryLogger();
    const experiment = new Experiment({ logger, name: 'exp', config: { dataset: 'iris' }, tags: { team: 'ml' } });
    await experiment.run({ grid: { lr: [0.01, 0.1] }, random: { n: 1, seed: 3, space: { wd: { min: 0, max: 1, log: false }, act: ['a', 'b'] } }, concurrency: 2 }, () => 1);
    const parent = logger.getRun('exp')!;
    expect(parent.params).toMatchObject({
      dataset: 'iris',
      'search.grid.lr': '[0.01,0.1]',
      'search.random.n': '1',
      'search.random.seed': '3',
      'search.random.space.wd.min': '0',
      'search.random.space.wd.max': '1',
      'search.random.space.act': '["a","b"]',
      'search.concurrency': '2',
    });
    expect(parent.tags).toMatchObject({ team: 'ml', objective: 'objective', goal: 'minimize' });
    expect(parent.parentId).toBeUndefined();
  });
});

describe('Experiment: running trials', () => {
  it('keeps at most `concurrency` trials in flight, and does use that many', async () => {
    for (const concurrency of [1, 3]) {
      const { experiment } = setup();
      let inFlight = 0;
      let maxInFlight = 0;
      await experiment.run({ grid: { i: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }, concurrency }, async (params) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(5 + (params.i % 3) * 3);
        inFlight--;
        return params.i;
      });
      expect(maxInFlight).toBe(concurrency);
    }
  });

  it('defaults to one trial at a time', async () => {
    const { experiment } = setup();
    let inFlight = 0;
    let maxInFlight = 0;
    await experiment.run({ grid: { i: [1, 2, 3, 4] } }, async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(2);
      inFlight--;
      return 0;
    });
    expect(maxInFlight).toBe(1);
  });

  it('nests every trial under the parent and makes it the active run, across awaits and in parallel', async () => {
    const { logger, experiment } = setup();
    const mismatches: string[] = [];
    const summary = await experiment.run({ grid: { i: [0, 1, 2, 3, 4, 5] }, concurrency: 3 }, async (params, run, info) => {
      if (activeRun() !== run) mismatches.push(`before await ${info.index}`);
      await sleep(3 * ((params.i * 7) % 4));
      if (activeRun() !== run) mismatches.push(`after await ${info.index}`);
      // Nesting inside a trial hangs off the trial run.
      const inner = logger.startRun({ nested: true, name: `inner-${params.i}` });
      await inner.finish();
      expect(info).toEqual({ index: params.i, total: 6, name: `exp-trial-${params.i}` });
      return params.i;
    });
    expect(mismatches).toEqual([]);
    const parent = logger.getRun('exp')!;
    expect(summary.runId).toBe(parent.id);
    for (const t of summary.trials) {
      const record = logger.getRun(t.runId)!;
      expect(record.parentId).toBe(parent.id);
      expect(record.name).toBe(`exp-trial-${t.index}`);
      expect(logger.getRun(`inner-${t.index}`)!.parentId).toBe(t.runId);
    }
    expect(activeRun()).toBeUndefined();
  });

  it('records the objective on each trial run and finishes it success', async () => {
    const { logger, experiment } = setup({ objective: 'val/loss' });
    await experiment.run({ grid: { x: [2, 3] } }, (params, run) => {
      run.logMetrics({ 'train/loss': params.x * 10 }, { step: 5 });
      return params.x / 10;
    });
    const trial = logger.getRun('exp-trial-1')!;
    expect(trial.status).toBe('success');
    expect(lastMetricValues(trial)).toEqual({ 'train/loss': 30, 'val/loss': 0.3 });
    // Logged at the step after the trial's own last step.
    expect(trial.metrics['val/loss']![0]!.step).toBe(6);
  });

  it('fails a trial that throws (sync or async) or returns NaN or a non-number, and goes on with the others', async () => {
    const { logger, experiment } = setup();
    const summary = await experiment.run({ grid: { mode: ['ok', 'sync', 'async', 'nan', 'string', 'ok2'] }, concurrency: 2 }, async (params) => {
      if (params.mode === 'sync') throw new RangeError('sync boom');
      if (params.mode === 'async') {
        await sleep(1);
        throw new Error('async boom');
      }
      if (params.mode === 'nan') return NaN;
      if (params.mode === 'string') return '0.5' as unknown as number;
      return params.mode === 'ok' ? 1 : 2;
    });
    expect(summary.trials.map((t) => t.status)).toEqual(['success', 'failed', 'failed', 'failed', 'failed', 'success']);
    expect(summary.failed).toBe(4);
    expect(summary.trials[1]!.error).toMatchObject({ type: 'RangeError', message: 'sync boom' });
    expect(summary.trials[2]!.error).toMatchObject({ type: 'Error', message: 'async boom' });
    expect(summary.trials[3]!.error?.message).toMatch(/returned NaN/);
    expect(summary.trials[4]!.error?.message).toMatch(/returned string/);
    expect(summary.trials[1]!.value).toBeUndefined();
    expect(summary.trials[5]!.value).toBe(2);
    expect(logger.getRun('exp-trial-1')!.status).toBe('failed');
    expect(logger.getRun('exp-trial-1')!.error).toMatchObject({ message: 'sync boom' });
    expect(logger.getRun('exp-trial-3')!.metrics.objective).toBeUndefined();
    const parent = logger.getRun('exp')!;
    expect(parent.status).toBe('success');
    expect(lastMetricValues(parent)).toMatchObject({ trials_completed: 2, trials_failed: 4, best_objective: 1 });
  });

  it('fails a trial that is a synchronous function throwing', async () => {
    const { experiment } = setup();
    const summary = await experiment.run({ grid: { a: [1, 2] } }, (params) => {
      if (params.a === 1) throw new Error('plain sync');
      return 5;
    });
    expect(summary.trials.map((t) => t.status)).toEqual(['failed', 'success']);
    expect(summary.best).toMatchObject({ index: 1, value: 5 });
  });

  it('fails the parent when every trial fails, and has no best', async () => {
    const { logger, experiment } = setup();
    const summary = await experiment.run({ grid: { a: [1, 2] } }, () => {
      throw new Error('nope');
    });
    expect(summary.best).toBeUndefined();
    expect(summary.failed).toBe(2);
    const parent = logger.getRun('exp')!;
    expect(parent.status).toBe('failed');
    expect(parent.error?.message).toMatch(/all 2 trials failed.*nope/);
    expect(parent.tags.best_trial_id).toBeUndefined();
    expect(lastMetricValues(parent)).toEqual({ trials_completed: 0, trials_failed: 2 });
  });

  it.each([
    ['minimize', 2, 0.1],
    ['maximize', 1, 0.9],
  ] as const)('tags the best trial when goal is %s', async (goal, bestIndex, bestValue) => {
    const { logger, experiment } = setup({ goal, objective: 'score' });
    const values = [0.5, 0.9, 0.1, 0.3];
    const summary = await experiment.run({ grid: { i: [0, 1, 2, 3] }, concurrency: 4 }, async (params) => {
      await sleep(4 - params.i); // finish in reverse order: the best is still picked by value
      return values[params.i]!;
    });
    const best = summary.trials[bestIndex]!;
    expect(summary.best).toEqual({ index: bestIndex, runId: best.runId, name: `exp-trial-${bestIndex}`, params: { i: bestIndex }, value: bestValue });
    const parent = logger.getRun('exp')!;
    expect(parent.tags).toMatchObject({ best_trial_id: best.runId, best_trial_name: `exp-trial-${bestIndex}`, best_value: String(bestValue), goal });
    expect(lastMetricValues(parent)).toEqual({ best_score: bestValue, trials_completed: 4, trials_failed: 0 });
    expect(parent.status).toBe('success');
    expect(summary.failed).toBe(0);
    expect(summary.trials.map((t) => t.value)).toEqual(values);
  });

  it('picks the earliest trial on a tie', async () => {
    const { experiment } = setup({ goal: 'maximize' });
    const summary = await experiment.run({ grid: { i: [0, 1, 2] } }, (params) => (params.i === 0 ? 0 : 1));
    expect(summary.best?.index).toBe(1);
  });

  it('stops starting trials and rejects when its run is finished from outside (signal, shutdown)', async () => {
    const { logger, experiment } = setup();
    const started: number[] = [];
    const promise = experiment.run({ grid: { i: [0, 1, 2, 3, 4, 5] }, concurrency: 2 }, async (params, run) => {
      started.push(params.i);
      if (params.i === 1) await logger.shutdown(); // finishes every running run as killed
      await sleep(1);
      run.logMetrics({ x: 1 }); // throws now: the run is killed
      return 0;
    });
    await expect(promise).rejects.toThrow(/interrupted.*finished killed/);
    expect(started).toEqual([0, 1]);
    expect(logger.getRun('exp')!.status).toBe('killed');
    expect(logger.getRun('exp-trial-0')!.status).toBe('killed');
    expect(logger.getRun('exp-trial-2')).toBeUndefined();
  });
});

describe('Experiment: programmer errors', () => {
  const logger = new InMemoryLogger();

  it.each([
    [{ logger, name: '' }, 'Experiment name must be a non-empty string'],
    [{ logger: {} as InMemoryLogger, name: 'x' }, 'Experiment needs a logger'],
    [{ logger, name: 'x', goal: 'max' as 'maximize' }, "Experiment goal must be 'minimize' or 'maximize', got \"max\""],
    [{ logger, name: 'x', objective: 'bad key!' }, 'invalid objective metric key "bad key!"'],
    [{ logger, name: 'x', config: { search: 1 } }, 'must not have a "search" key'],
  ])('constructor rejects %j', (options, message) => {
    expect(() => new Experiment(options)).toThrow(message);
  });

  it.each<[SearchSpec, string]>([
    [{ grid: { lr: [] } }, 'grid.lr is an empty array'],
    [{ grid: {} }, 'grid must name at least one parameter'],
    [{ grid: { lr: 0.1 as unknown as number[] } }, 'grid.lr must be an array'],
    [{ random: { n: 0, seed: 1, space: { a: [1] } } }, 'random.n must be a positive integer, got 0'],
    [{ random: { n: 2.5, seed: 1, space: { a: [1] } } }, 'random.n must be a positive integer, got 2.5'],
    [{ random: { n: 2, seed: 0.5, space: { a: [1] } } }, 'random.seed must be an integer'],
    [{ random: { n: 2, seed: 1, space: {} } }, 'random.space must name at least one parameter'],
    [{ random: { n: 2, seed: 1, space: { a: [] } } }, 'random.space.a is an empty array'],
    [{ random: { n: 2, seed: 1, space: { a: { min: 2, max: 1 } } } }, 'random.space.a: min (2) is greater than max (1)'],
    [{ random: { n: 2, seed: 1, space: { a: { min: 0, max: 1, log: true } } } }, 'random.space.a: a log range needs min > 0'],
    [{ random: { n: 2, seed: 1, space: { a: { min: 0.2, max: 0.8, integer: true } } } }, 'random.space.a: no integer between'],
    [{ random: { n: 2, seed: 1, space: { a: { min: NaN, max: 1 } } } }, 'random.space.a needs finite numbers min and max'],
    [{ random: { n: 2, seed: 1, space: { a: 5 as unknown as number[] } } }, 'random.space.a must be an array of choices'],
    [{ grid: { a: [1] }, concurrency: 0 }, 'concurrency must be a positive integer, got 0'],
    [{ grid: { a: [1] }, concurrency: 1.5 }, 'concurrency must be a positive integer, got 1.5'],
  ])('run rejects %j before starting any run', async (search, message) => {
    const local = new InMemoryLogger();
    const experiment = new Experiment({ logger: local, name: 'x' });
    await expect(experiment.run(search, () => 0)).rejects.toThrow(message);
    expect(local.runs).toHaveLength(0);
  });

  it('run rejects a missing trial function', async () => {
    const experiment = new Experiment({ logger, name: 'x' });
    await expect(experiment.run({}, undefined as unknown as () => number)).rejects.toThrow('experiment.run needs a trial function');
  });
});
