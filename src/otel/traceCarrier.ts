// W3C trace context to and from the TRACEPARENT / TRACESTATE carrier of Run.childEnv().

import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Context, Span, TextMapGetter, TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { TraceCarrier } from '../core/processParent.js';

const propagator = new W3CTraceContextPropagator();

const getter: TextMapGetter<TraceCarrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => (key === 'traceparent' ? carrier.traceparent : key === 'tracestate' ? carrier.tracestate : undefined),
};

const setter: TextMapSetter<Partial<TraceCarrier>> = {
  set: (carrier, key, value) => {
    if (key === 'traceparent' || key === 'tracestate') carrier[key] = value;
  },
};

/** ROOT_CONTEXT with the launching process's span as a remote parent (ROOT_CONTEXT when it has none). */
export function contextFromCarrier(carrier: TraceCarrier | undefined): Context {
  return carrier === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, carrier, getter);
}

/** The span as a carrier, or undefined for a span that is not recording a valid context (a no-op tracer). */
export function carrierOf(span: Span): TraceCarrier | undefined {
  if (!trace.isSpanContextValid(span.spanContext())) return undefined;
  const carrier: Partial<TraceCarrier> = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
  return carrier.traceparent === undefined ? undefined : (carrier as TraceCarrier);
}
