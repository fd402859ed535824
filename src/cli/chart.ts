// A metric's curve as a terminal line chart (asciichart), one point per step, downsampled to fit.

import { createRequire } from 'node:module';
import type { MetricSample } from '../core/RunRecord.js';

interface PlotConfig {
  height?: number;
  offset?: number;
  format?: (value: number, row: number) => string;
  colors?: Array<string | undefined>;
}

interface AsciiChart {
  plot(series: number[] | number[][], config?: PlotConfig): string;
  cyan: string;
}

// asciichart ships no type declarations: load it through require and give it the types used here.
const asciichart = createRequire(import.meta.url)('asciichart') as AsciiChart;

export interface MetricCurve {
  /** One value per step (the latest logged at that step), in step order. */
  steps: number[];
  values: number[];
  /** NaN and ±Infinity points left out of the chart. */
  skipped: number;
}

/** Sorts by step (then time, then logging order), keeps the latest point per step, drops non-finite values. */
export function metricCurve(samples: readonly MetricSample[]): MetricCurve {
  const ordered = samples.map((s, i) => ({ ...s, i })).sort((a, b) => a.step - b.step || a.timestamp - b.timestamp || a.i - b.i);
  const steps: number[] = [];
  const values: number[] = [];
  let skipped = 0;
  for (let k = 0; k < ordered.length; k++) {
    const s = ordered[k]!;
    if (ordered[k + 1]?.step === s.step) continue; // a later point at the same step wins
    if (!Number.isFinite(s.value)) {
      skipped++;
      continue;
    }
    steps.push(s.step);
    values.push(s.value);
  }
  return { steps, values, skipped };
}

/** Averages consecutive points into at most `width` buckets. */
export function downsample(values: readonly number[], width: number): number[] {
  if (values.length <= width) return [...values];
  const out: number[] = [];
  for (let b = 0; b < width; b++) {
    const from = Math.floor((b * values.length) / width);
    const to = Math.floor(((b + 1) * values.length) / width);
    let sum = 0;
    for (let i = from; i < to; i++) sum += values[i]!;
    out.push(sum / (to - from));
  }
  return out;
}

export interface ChartOptions {
  /** Total width available, in columns. */
  width: number;
  /** Rows of the plot area. Default 8. */
  height?: number;
  color?: boolean;
}

/** The chart text for a curve, with a step axis below; undefined when fewer than 2 finite points remain. */
export function renderChart(curve: MetricCurve, options: ChartOptions): string | undefined {
  if (curve.values.length < 2) return undefined;
  const height = options.height ?? 8;
  // Fit the plot next to labels of a guessed width first, then size the labels to what they are.
  let series = downsample(curve.values, Math.max(10, options.width - 12));
  const labelWidth = Math.max(...axisValues(series, height).map((v) => axisLabel(v).length));
  series = downsample(curve.values, Math.max(10, options.width - labelWidth - 2));
  const plot = asciichart.plot(series, {
    height,
    offset: 2,
    format: (x) => axisLabel(x).padStart(labelWidth),
    ...(options.color === true ? { colors: [asciichart.cyan] } : {}),
  });
  const first = `step ${curve.steps[0]}`;
  const last = `step ${curve.steps[curve.steps.length - 1]}`;
  const axisWidth = Math.max(series.length - 1, first.length + last.length + 1);
  const axis = ' '.repeat(labelWidth + 1) + first + last.padStart(axisWidth - first.length);
  return `${plot}\n${axis}`;
}

/** The values asciichart labels its rows with (same arithmetic as its plot()). */
function axisValues(series: readonly number[], height: number): number[] {
  const min = Math.min(...series);
  const max = Math.max(...series);
  const range = max - min;
  const ratio = range !== 0 ? height / range : 1;
  const min2 = Math.round(min * ratio);
  const rows = Math.round(max * ratio) - min2;
  const values: number[] = [];
  for (let y = 0; y <= rows; y++) values.push(rows > 0 ? max - (y * range) / rows : y + min2);
  return values;
}

/** Four significant digits, without trailing zeros; large and tiny values in exponent form. */
function axisLabel(x: number): string {
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-4) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}
