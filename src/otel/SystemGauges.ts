// System samples as OpenTelemetry metrics under the semantic conventions' names (system.*,
// process.*, v8js.*, nodejs.eventloop.*, hw.*), each series carrying the run's identity: the
// latest sample of every sampled run while it runs, so Prometheus can select a run's machine.

import { ValueType } from '@opentelemetry/api';
import type { Attributes, BatchObservableCallback, Meter, Observable } from '@opentelemetry/api';
import { otelSystemInstruments, otelSystemSeries } from '../system/conventions.js';

export class SystemGauges {
  private readonly _meter: Meter;
  private readonly _instruments = new Map<string, Observable>();
  private readonly _runs = new Map<string, { attributes: Attributes; values: Record<string, number> }>();
  private readonly _callback: BatchObservableCallback;

  constructor(meter: Meter) {
    this._meter = meter;
    for (const { name, unit, kind } of otelSystemInstruments()) {
      const options = { unit, valueType: ValueType.DOUBLE, description: `${name} of the machine or process a runtel run trains on (attribute ml.run.id)` };
      this._instruments.set(name, kind === 'counter' ? meter.createObservableCounter(name, options) : meter.createObservableGauge(name, options));
    }
    this._callback = (result) => {
      for (const run of this._runs.values()) {
        for (const key in run.values) {
          const series = otelSystemSeries(key);
          const instrument = series === undefined ? undefined : this._instruments.get(series.name);
          if (instrument !== undefined) result.observe(instrument, run.values[key]! * series!.factor, { ...series!.attributes, ...run.attributes });
        }
      }
    };
    meter.addBatchObservableCallback(this._callback, [...this._instruments.values()]);
  }

  /** A run's newest sample replaces its previous one. */
  sample(runId: string, identity: Attributes, values: Record<string, number>): void {
    this._runs.set(runId, { attributes: identity, values });
  }

  /** The run ended: its machine is no longer reported. */
  finished(runId: string): void {
    this._runs.delete(runId);
  }

  remove(): void {
    this._meter.removeBatchObservableCallback(this._callback, [...this._instruments.values()]);
    this._runs.clear();
  }
}
