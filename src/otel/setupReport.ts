// What the OTel backend tells the user about the app's OpenTelemetry setup: providers that are not
// registered (the data goes nowhere), a log record pipeline whose drops runtel cannot count, and
// log records that could not be delivered.

import type { BackendFailure } from '../core/errors.js';
import { getStringFromEnv } from '../core/env.js';
import { countingProcessorsCreated } from './CountingBatchLogRecordProcessor.js';
import type { DeliveryStats } from './CountingBatchLogRecordProcessor.js';
import { globalOtelProviders } from './globals.js';

export type OtelSignal = 'traces' | 'metrics' | 'logs';

const PROVIDER: Record<OtelSignal, string> = { traces: 'TracerProvider', metrics: 'MeterProvider', logs: 'LoggerProvider' };

let warnedNoCountingProcessor = false;

/** Warnings about the setup, found at the first run: each is reported once. */
export function setupWarnings(explicit: Record<OtelSignal, boolean>, deliveryGiven: boolean): string[] {
  const out: string[] = [];
  if (!explicit.traces || !explicit.metrics || !explicit.logs) {
    const registered = globalOtelProviders();
    const missing = [
      !explicit.traces && !registered.traces ? 'TracerProvider (runs as spans)' : undefined,
      !explicit.metrics && !registered.metrics ? 'MeterProvider (dashboard gauges)' : undefined,
      !explicit.logs && !registered.logs ? 'LoggerProvider (metric points and run records)' : undefined,
    ].filter((s) => s !== undefined);
    if (missing.length > 0) out.push(`no global OpenTelemetry ${missing.join(', ')} is registered, so that data goes nowhere: start your NodeSDK (or call startOtel()) before the first run`);
  }
  if (!deliveryGiven && countingProcessorsCreated() === 0 && !warnedNoCountingProcessor) {
    warnedNoCountingProcessor = true;
    out.push(
      "no CountingBatchLogRecordProcessor exists, so runtel cannot count undelivered metric points (the SDK's BatchLogRecordProcessor drops records past its 2048-record queue silently): " +
        'pass new CountingBatchLogRecordProcessor({ exporter }) in NodeSDK logRecordProcessors, or use startOtel()',
    );
  }
  return out;
}

/** Whether undelivered log records can be counted: a processor was given, or runtel's counting processor exists. */
export function deliveryCountable(deliveryGiven: boolean): boolean {
  return deliveryGiven || countingProcessorsCreated() > 0;
}

/** The line for log records undelivered so far. */
export function undeliveredLine(undelivered: number, stats: DeliveryStats): string {
  return (
    `${undelivered} log record(s) (metric points and run records) could not be delivered so far ` +
    `(queue full: ${stats.dropped}, export failed: ${stats.failed}, abandoned at shutdown: ${stats.abandoned}` +
    `${stats.lastError === undefined ? '' : `; last error: ${stats.lastError}`}); OtelLogger.deliveryStats() has the counts`
  );
}

/** The line at shutdown when undelivered records cannot be counted. */
export const UNCOUNTABLE_LINE =
  'the number of undelivered metric points is unknown: the logger provider has no CountingBatchLogRecordProcessor, and the SDK drops records past its queue silently';

/** A provider that is still flushing, with the endpoint its OTLP exporter would use, for a "did not finish" message. */
export function slowProvider(signal: OtelSignal, owned: boolean): string {
  const specific = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`;
  const endpoint = getStringFromEnv(specific) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT');
  const where = endpoint === undefined ? `its exporter's endpoint (${specific} and OTEL_EXPORTER_OTLP_ENDPOINT are unset)` : `its exporter to ${endpoint}`;
  return `${owned ? 'runtel' : "the app's"} ${PROVIDER[signal]} is still flushing (${where} is slow or unreachable)`;
}

export function reportOrWrite(report: ((failure: BackendFailure) => void) | undefined, operation: string, message: string): void {
  if (report !== undefined) report({ backend: 'otel', operation, error: new Error(message) });
  else process.stderr.write(`runtel: otel: ${message}\n`);
}
