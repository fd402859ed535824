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
});
