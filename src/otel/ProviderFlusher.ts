// Flushing the OTel providers a backend writes to, and knowing which are still flushing (a slow
// exporter is named in the logger's "did not finish" message).

import { logs } from '@opentelemetry/api-logs';
import type { LoggerProvider } from '@opentelemetry/api-logs';
import { metrics, trace } from '@opentelemetry/api';
import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { flushableOf } from './globals.js';
import type { OtelSignal } from './setupReport.js';

export interface Providers {
  tracerProvider?: TracerProvider;
  meterProvider?: MeterProvider;
  loggerProvider?: LoggerProvider;
}

export class ProviderFlusher {
  private readonly _flushing = new Map<OtelSignal, number>();

  /** `providers`: the backend's own, else the global ones (read at each flush: they may be set later). */
  constructor(private readonly _providers: Providers) {}

  /** The signals whose providers are flushing now. */
  flushing(): OtelSignal[] {
    return [...this._flushing.keys()];
  }

  async flush(signals: OtelSignal[]): Promise<void> {
    const p = this._providers;
    const providers: Record<OtelSignal, TracerProvider | MeterProvider | LoggerProvider> = {
      traces: p.tracerProvider ?? trace.getTracerProvider(),
      metrics: p.meterProvider ?? metrics.getMeterProvider(),
      logs: p.loggerProvider ?? logs.getLoggerProvider(),
    };
    await Promise.all(
      signals.map(async (signal) => {
        const flushable = flushableOf(providers[signal]);
        if (flushable === undefined) return;
        this._flushing.set(signal, (this._flushing.get(signal) ?? 0) + 1);
        try {
          await flushable.forceFlush();
        } finally {
          const left = this._flushing.get(signal)! - 1;
          if (left === 0) this._flushing.delete(signal);
          else this._flushing.set(signal, left);
        }
      }),
    );
  }
}
