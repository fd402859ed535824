// The OTel backend's instruments for dashboards: each run's latest value per metric key and its
// largest step as observable gauges, with a bounded number of series (runs × keys), finished runs
// by status and their durations. Every point still goes out as a log record; the gauges are a view.

import { ValueType } from '@opentelemetry/api';
import type { Attributes, Counter, Histogram, Meter, ObservableCallback, ObservableCounter, ObservableGauge } from '@opentelemetry/api';
import type { FinalRunStatus } from '../core/types.js';
import { ATTR_EXPERIMENT_NAME, ATTR_METRIC_KEY, ATTR_RUN_ID, ATTR_RUN_NAME, ATTR_RUN_STATUS, METRIC_GAUGE, METRIC_GAUGE_OVERFLOW, METRIC_RUNS, METRIC_RUN_DURATION, METRIC_RUN_STEP } from './conventions.js';

/** The latest point of one metric key of one run (MLflow's "latest": largest step, then timestamp). */
export interface Latest {
  step: number;
  timestamp: number;
  value: number;
  /** The `ml.metric` gauge's attributes for this series, or undefined when over the cardinality bound. */
  gaugeAttrs: Attributes | undefined;
}

/** A run's metric state, kept past the run's end when the gauges carry it. */
export interface RunMetrics {
  latest: Map<string, Latest>;
  maxStep: number;
  /** Attributes of the run's `ml.run.step` series; undefined when the run is not on the gauges. */
  stepAttrs: Attributes | undefined;
  gaugeKeys: number;
}

const DURATION_BUCKETS_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 86_400];

export class RunGauges {
  /** Metric points not mirrored on the `ml.metric` gauge because of the cardinality bound. */
  readonly overflow = { runs: 0, keys: 0 };
  private readonly _maxRuns: number;
  private readonly _maxKeys: number;
  private readonly _runs: RunMetrics[] = [];
  private readonly _runsCounter: Counter;
  private readonly _duration: Histogram;
  private _observables: Array<[ObservableGauge | ObservableCounter, ObservableCallback]>;

  constructor(meter: Meter, maxRuns: number, maxKeysPerRun: number) {
    this._maxRuns = maxRuns;
    this._maxKeys = maxKeysPerRun;
    this._runsCounter = meter.createCounter(METRIC_RUNS, { description: 'Finished runs by final status', unit: '{run}' });
    this._duration = meter.createHistogram(METRIC_RUN_DURATION, {
      description: 'Run duration from start to finish',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    });
    const gauge = meter.createObservableGauge(METRIC_GAUGE, {
      description: "Each run's latest value of each metric key (largest step, then latest timestamp)",
      valueType: ValueType.DOUBLE,
    });
    const stepGauge = meter.createObservableGauge(METRIC_RUN_STEP, { description: "Each run's largest logged step", valueType: ValueType.INT });
    const overflow = meter.createObservableCounter(METRIC_GAUGE_OVERFLOW, {
      description: 'Metric points not mirrored on the ml.metric gauge because of its cardinality bound (all are in the ml.metric log records)',
      unit: '{point}',
      valueType: ValueType.INT,
    });
    const observeGauge: ObservableCallback = (result) => {
      for (const run of this._runs) {
        for (const latest of run.latest.values()) {
          // OTLP/JSON cannot carry NaN or ±Infinity (see docs): the log records carry those points.
          if (latest.gaugeAttrs !== undefined && Number.isFinite(latest.value)) result.observe(latest.value, latest.gaugeAttrs);
        }
      }
    };
    const observeStep: ObservableCallback = (result) => {
      for (const run of this._runs) if (run.maxStep >= 0) result.observe(run.maxStep, run.stepAttrs);
    };
    const observeOverflow: ObservableCallback = (result) => {
      if (this.overflow.runs > 0) result.observe(this.overflow.runs, { reason: 'runs' });
      if (this.overflow.keys > 0) result.observe(this.overflow.keys, { reason: 'keys' });
    };
    gauge.addCallback(observeGauge);
    stepGauge.addCallback(observeStep);
    overflow.addCallback(observeOverflow);
    this._observables = [
      [gauge, observeGauge],
      [stepGauge, observeStep],
      [overflow, observeOverflow],
    ];
  }

  /** The first point of a key of a run: a new series, on the gauges while the bound has room. */
  newSeries(m: RunMetrics, identity: { id: string; name: string; experiment: string }, key: string, step: number, timestamp: number, value: number): Latest {
    if (m.latest.size === 0 && m.stepAttrs === undefined && this._runs.length < this._maxRuns) {
      m.stepAttrs = { [ATTR_RUN_ID]: identity.id, [ATTR_RUN_NAME]: identity.name, [ATTR_EXPERIMENT_NAME]: identity.experiment };
      this._runs.push(m);
    }
    let gaugeAttrs: Attributes | undefined;
    if (m.stepAttrs !== undefined && m.gaugeKeys < this._maxKeys) {
      gaugeAttrs = { [ATTR_METRIC_KEY]: key, ...m.stepAttrs };
      m.gaugeKeys++;
    } else {
      this.overflow[m.stepAttrs === undefined ? 'runs' : 'keys']++;
    }
    return { step, timestamp, value, gaugeAttrs };
  }

  /** A run ended: counted by status, its duration recorded; it stays on the gauges with only the series they read. */
  finished(m: RunMetrics, status: FinalRunStatus, experiment: string, durationMillis: number): void {
    if (m.stepAttrs !== undefined) {
      for (const [key, latest] of m.latest) if (latest.gaugeAttrs === undefined) m.latest.delete(key);
    }
    const byStatus: Attributes = { [ATTR_RUN_STATUS]: status, [ATTR_EXPERIMENT_NAME]: experiment };
    this._runsCounter.add(1, byStatus);
    this._duration.record(Math.max(0, durationMillis) / 1000, byStatus);
  }

  /** Stops observing (shutdown). */
  remove(): void {
    for (const [instrument, callback] of this._observables) instrument.removeCallback(callback);
    this._observables = [];
  }
}
