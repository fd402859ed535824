import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { InMemoryLogger, callbacksFor, tfjsCallbacks, withRun } from '../../src/index.js';
import type { RunCallbacks } from '../../src/index.js';

describe('callbacksFor', () => {
  it('maps lifecycle events onto the run and calls plain-object extras in order', async () => {
    const logger = new InMemoryLogger();
    const order: string[] = [];
    const extra: RunCallbacks = {
      onTrainBegin: () => { order.push('extra:trainBegin'); },
      onEpochEnd: async (epoch) => { await Promise.resolve(); order.push(`extra:epochEnd:${epoch}`); },
      onTrainEnd: (status) => { order.push(`extra:trainEnd:${status}`); },
    };
    await withRun(logger, { name: 'cb' }, async (run) => {
      const cb = callbacksFor(run, extra);
      await cb.onTrainBegin();
      for (let epoch = 0; epoch < 3; epoch++) {
        await cb.onEpochBegin(epoch);
        await cb.onEpochEnd(epoch, { loss: 1 / (epoch + 1) });
      }
      await cb.onEvaluate({ accuracy: 0.9, 'eval/f1': 0.8 }, 2);
      await cb.onLog({ lr: 0.01 }, 2);
      await cb.onTrainEnd('success');
    });
    const rec = logger.getRun('cb')!;
    expect(rec.metrics.loss!.map((s) => [s.step, s.value])).toEqual([[0, 1], [1, 0.5], [2, 1 / 3]]);
    expect(rec.metrics['eval/accuracy']![0]).toMatchObject({ step: 2, value: 0.9 });
    expect(rec.metrics['eval/f1']![0]).toMatchObject({ step: 2, value: 0.8 });
    expect(rec.metrics.lr![0]).toMatchObject({ step: 2, value: 0.01 });
    expect(rec.metrics['train/duration_seconds']![0]!.value).toBeGreaterThanOrEqual(0);
    expect(rec.tags['train.status']).toBe('success');
    expect(rec.status).toBe('success');
    expect(order).toEqual(['extra:trainBegin', 'extra:epochEnd:0', 'extra:epochEnd:1', 'extra:epochEnd:2', 'extra:trainEnd:success']);
  });

  it('with step-level logging, epoch metrics land on the last step with an epoch metric', async () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun({ name: 'steps' });
    const cb = callbacksFor(run);
    for (let step = 0; step < 10; step++) await cb.onStepEnd(step, { loss: step });
    await cb.onEpochEnd(0, { epoch_loss: 4.5 });
    await run.finish();
    const rec = logger.getRun('steps')!;
    expect(rec.metrics.loss).toHaveLength(10);
    expect(rec.metrics.epoch_loss![0]).toMatchObject({ step: 9, value: 4.5 });
    expect(rec.metrics.epoch![0]).toMatchObject({ step: 9, value: 0 });
  });

  it('a bad value from a callback is a programmer error at the call', async () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun();
    await expect(callbacksFor(run).onLog({ loss: 'high' as unknown as number }, 1)).rejects.toThrow('metric "loss" must be a number');
  });
});

describe('tfjsCallbacks with a real TensorFlow.js model.fit', () => {
  it('logs every epoch and every batch', async () => {
    await tf.setBackend('cpu');
    const logger = new InMemoryLogger();
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 4, inputShape: [2], activation: 'relu' }));
    model.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
    model.compile({ optimizer: tf.train.adam(0.05), loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const xs = tf.tensor2d([[0, 0], [0, 1], [1, 0], [1, 1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.2], [0.8, 0.8]]);
    const ys = tf.tensor2d([[0], [1], [1], [0], [1], [1], [0], [0]]);
    await withRun(logger, { name: 'tfjs' }, async (run) => {
      await model.fit(xs, ys, { epochs: 5, batchSize: 4, validationSplit: 0.25, verbose: 0, callbacks: tfjsCallbacks(run) });
    });
    const rec = logger.getRun('tfjs')!;
    expect(rec.metrics.loss!.map((s) => s.step)).toEqual([0, 1, 2, 3, 4]);
    expect(rec.metrics.val_loss!.map((s) => s.step)).toEqual([0, 1, 2, 3, 4]);
    expect(Object.keys(rec.metrics)).toContain('acc');
    // 6 training samples, batch 4 → 2 batches per epoch, 10 in all.
    expect(rec.metrics['batch/loss']!.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rec.metrics.batch).toBeUndefined();
    expect(rec.metrics['batch/size']).toBeUndefined();
    xs.dispose();
    ys.dispose();
  });

  // Issue 14, item 12: next to tfjs's own callbacks (tfjs mishandles a plain object among them), and
  // over several fit() calls on one run.
  function xorData(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
    return {
      xs: tf.tensor2d([[0, 0], [0, 1], [1, 0], [1, 1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.2], [0.8, 0.8]]),
      ys: tf.tensor2d([[0], [1], [1], [0], [1], [1], [0], [0]]),
    };
  }
  function xorModel(): tf.Sequential {
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 4, inputShape: [2], activation: 'relu' }));
    model.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'binaryCrossentropy' });
    return model;
  }

  it('works next to tf.callbacks.earlyStopping (in either order): logs exactly the epochs trained', async () => {
    await tf.setBackend('cpu');
    const { xs, ys } = xorData();
    for (const order of ['runtel first', 'tfjs first'] as const) {
      const logger = new InMemoryLogger();
      const model = xorModel();
      // A min delta no epoch of slow SGD reaches: stops after 1 + patience epochs.
      const stop = tf.callbacks.earlyStopping({ monitor: 'loss', patience: 2, minDelta: 10 });
      let history: tf.History | undefined;
      await withRun(logger, { name: order }, async (run) => {
        const mine = tfjsCallbacks(run);
        history = await model.fit(xs, ys, { epochs: 50, batchSize: 4, verbose: 0, callbacks: order === 'runtel first' ? [mine, stop] : [stop, mine] });
      });
      const trained = history!.epoch.length;
      expect(trained).toBe(3);
      const rec = logger.getRun(order)!;
      expect(rec.metrics.loss!.map((s) => s.step)).toEqual([0, 1, 2]);
      expect(rec.metrics.loss!.map((s) => s.value)).toEqual(history!.history.loss);
      expect(rec.metrics['batch/loss']).toHaveLength(trained * 2);
    }
    xs.dispose();
    ys.dispose();
  });

  it('a second fit with a fresh tfjsCallbacks(run) continues the run’s epoch and batch steps', async () => {
    await tf.setBackend('cpu');
    const { xs, ys } = xorData();
    const logger = new InMemoryLogger();
    const model = xorModel();
    await withRun(logger, { name: 'two-fits' }, async (run) => {
      await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0, callbacks: [tfjsCallbacks(run)] });
      await model.fit(xs, ys, { epochs: 3, batchSize: 4, verbose: 0, callbacks: tfjsCallbacks(run) });
      // tfjs's own numbering (initialEpoch) continues too: steps follow it, nothing is logged twice.
      await model.fit(xs, ys, { epochs: 7, initialEpoch: 5, batchSize: 4, verbose: 0, callbacks: [tfjsCallbacks(run)] });
    });
    const rec = logger.getRun('two-fits')!;
    expect(rec.metrics.loss!.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(rec.metrics['batch/loss']!.map((s) => s.step)).toEqual(Array.from({ length: 14 }, (_, i) => i));
    xs.dispose();
    ys.dispose();
  });

  it('is a tf.CustomCallback when tfjs is loaded (found in the process, or passed as { tf })', () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun({ name: 'instance', activate: false });
    expect(tfjsCallbacks(run)).toBeInstanceOf(tf.CustomCallback);
    expect(tfjsCallbacks(run, { tf })).toBeInstanceOf(tf.CustomCallback);
    const fake = { CustomCallback: class Marker { constructor(readonly args: unknown) {} } };
    expect(tfjsCallbacks(run, { tf: fake })).toBeInstanceOf(fake.CustomCallback);
  });
});
