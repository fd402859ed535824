// Multinomial logistic (softmax) regression in plain TypeScript, trained by full-batch gradient
// descent on mean cross-entropy plus an L2 penalty (l2 / 2) * ||W||² on the weights (not the bias).

import type { Dataset } from './data.js';

export interface SoftmaxModel {
  /** `weights[c][j]`: class c, feature j. */
  weights: number[][];
  bias: number[];
}

export interface Evaluation {
  /** Mean cross-entropy (without the L2 penalty, so train and validation compare). */
  loss: number;
  accuracy: number;
}

/** All-zero weights: every class equally likely, loss ln(classes). The problem is convex, so no random start is needed. */
export function initModel(classes: number, features: number): SoftmaxModel {
  return {
    weights: Array.from({ length: classes }, () => new Array<number>(features).fill(0)),
    bias: new Array<number>(classes).fill(0),
  };
}

/** Class probabilities for one row (numerically stable: the largest logit is subtracted first). */
export function predictProba(model: SoftmaxModel, row: readonly number[]): number[] {
  const logits = model.weights.map((w, c) => model.bias[c]! + dot(w, row));
  const max = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export function evaluate(model: SoftmaxModel, data: Dataset): Evaluation {
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < data.x.length; i++) {
    const p = predictProba(model, data.x[i]!);
    const label = data.y[i]!;
    loss -= Math.log(Math.max(p[label]!, Number.MIN_VALUE));
    if (argmax(p) === label) correct++;
  }
  return { loss: loss / data.x.length, accuracy: correct / data.x.length };
}

/** One full-batch gradient descent step, in place. */
export function gradientStep(model: SoftmaxModel, data: Dataset, learningRate: number, l2: number): void {
  const classes = model.weights.length;
  const features = model.weights[0]?.length ?? 0;
  const n = data.x.length;
  const gradW = Array.from({ length: classes }, () => new Array<number>(features).fill(0));
  const gradB = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) {
    const row = data.x[i]!;
    const p = predictProba(model, row);
    for (let c = 0; c < classes; c++) {
      const delta = (p[c]! - (data.y[i] === c ? 1 : 0)) / n;
      gradB[c]! += delta;
      const g = gradW[c]!;
      for (let j = 0; j < features; j++) g[j]! += delta * row[j]!;
    }
  }
  for (let c = 0; c < classes; c++) {
    const w = model.weights[c]!;
    const g = gradW[c]!;
    for (let j = 0; j < features; j++) w[j] = w[j]! - learningRate * (g[j]! + l2 * w[j]!);
    model.bias[c] = model.bias[c]! - learningRate * gradB[c]!;
  }
}

function dot(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let j = 0; j < a.length; j++) sum += a[j]! * b[j]!;
  return sum;
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
