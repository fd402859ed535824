// Whether the app registered OpenTelemetry providers with the global API, and flushing them.

import { ProxyTracerProvider, createNoopMeter, metrics, trace } from '@opentelemetry/api';
import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import type { LoggerProvider } from '@opentelemetry/api-logs';

/** Which signals have a global provider registered (by NodeSDK, `startOtel`, or by hand). */
export interface GlobalOtelProviders {
  traces: boolean;
  metrics: boolean;
  logs: boolean;
}

const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

export function globalOtelProviders(): GlobalOtelProviders {
  const tracerProvider = trace.getTracerProvider();
  const traces = tracerProvider instanceof ProxyTracerProvider ? tracerProvider.getDelegate() !== NOOP_TRACER_PROVIDER : true;
  const metricsRegistered = metrics.getMeterProvider().getMeter('runtel') !== createNoopMeter();
  // Unregistered, the logs API hands out its own proxy, which has no delegate logger.
  const loggerProvider = logs.getLoggerProvider() as LoggerProvider & { _getDelegateLogger?: (name: string) => unknown };
  const logsRegistered = typeof loggerProvider._getDelegateLogger !== 'function' || loggerProvider._getDelegateLogger('runtel') !== undefined;
  return { traces, metrics: metricsRegistered, logs: logsRegistered };
}

/** True when no signal has a global provider: the app did not set up OpenTelemetry. */
export function noGlobalOtelProviders(): boolean {
  const registered = globalOtelProviders();
  return !registered.traces && !registered.metrics && !registered.logs;
}

interface Flushable {
  forceFlush(): Promise<unknown>;
}

/** The SDK object behind an API provider (unwrapping the global tracer proxy), when it can flush. */
export function flushableOf(provider: TracerProvider | MeterProvider | LoggerProvider): Flushable | undefined {
  const target: unknown = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
  return typeof (target as Partial<Flushable>).forceFlush === 'function' ? (target as Flushable) : undefined;
}
