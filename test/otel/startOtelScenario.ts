// The end-to-end scenario both startOtel tests run: createLoggerFromEnv with an OTLP endpoint and no
// global providers starts OpenTelemetry itself; the real OTLP/HTTP exporters post to a local sink.

import { expect } from 'vitest';
import { trace } from '@opentelemetry/api';
import { backendsFromEnv, createLoggerFromEnv } from '../../src/backends/createLoggerFromEnv.js';
import { withRun } from '../../src/core/context.js';
import { fromMetricAttributeValue } from '../../src/otel/conventions.js';
import { globalOtelProviders } from '../../src/otel/globals.js';
import { attributesOf, decodeJsonLogs, decodeJsonSpans, decodeProtobufLogs, decodeProtobufSpans } from './otlp.js';
import { startOtlpSink } from './real/util.js';

const ENV_KEYS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'RUNTEL_EXPERIMENT', 'RUNTEL_BACKENDS'];

export async function startOtelScenario(protocol: 'http/json' | 'http/protobuf'): Promise<void> {
  const sink = await startOtlpSink();
  const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  try {
    for (const key of ENV_KEYS) delete process.env[key];
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = sink.url;
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = protocol;
    process.env.RUNTEL_EXPERIMENT = 'digits';
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment=test';
    expect(backendsFromEnv()).toContain('otel'); // selected by the endpoint
    process.env.RUNTEL_BACKENDS = 'otel';

    expect(globalOtelProviders()).toEqual({ traces: false, metrics: false, logs: false });
    const logger = createLoggerFromEnv({ flushTimeoutMillis: 20_000 });
    expect(globalOtelProviders()).toEqual({ traces: true, metrics: true, logs: true });

    let runId = '';
    let userSpanParent: string | undefined;
    await withRun(logger, { name: 'fit', config: { lr: 0.01 } }, async (run) => {
      runId = run.id;
      run.logMetrics({ loss: Number.NaN, acc: 0.5 }, { step: 1 });
      run.logMetrics({ loss: Infinity, acc: -Infinity }, { step: 2 });
      run.logMetrics({ loss: 0.25, acc: 1 }, { step: 3 });
      userSpanParent = trace.getActiveSpan()?.spanContext().spanId;
      trace.getTracer('user').startActiveSpan('eval', (span) => span.end());
      await Promise.resolve();
    });
    await logger.shutdown(); // flushes and shuts down the SDK it started

    const json = protocol === 'http/json';
    const logRequests = sink.requests.filter((r) => r.path === '/v1/logs');
    const traceRequests = sink.requests.filter((r) => r.path === '/v1/traces');
    expect(logRequests.length).toBeGreaterThan(0);
    expect(traceRequests.length).toBeGreaterThan(0);
    expect(sink.requests.some((r) => r.path === '/v1/metrics')).toBe(true);
    for (const r of sink.requests) expect(r.contentType).toContain(json ? 'application/json' : 'application/x-protobuf');

    const logBatches = logRequests.flatMap((r) => (json ? decodeJsonLogs(r.body) : decodeProtobufLogs(r.body)));
    const spanBatches = traceRequests.flatMap((r) => (json ? decodeJsonSpans(r.body) : decodeProtobufSpans(r.body)));
    const resource = attributesOf(logBatches[0]!.resource.attributes);
    expect(resource['service.name']).toBe('digits'); // RUNTEL_EXPERIMENT, as OTEL_SERVICE_NAME is unset
    expect(resource['deployment.environment']).toBe('test');
    expect(attributesOf(spanBatches[0]!.resource.attributes)['service.name']).toBe('digits');

    const spans = spanBatches.flatMap((b) => b.spans);
    const runSpan = spans.find((s) => s.name === 'fit')!;
    expect(attributesOf(runSpan.attributes)).toMatchObject({ 'ml.run.id': runId, 'ml.param.lr': '0.01', 'ml.run.status': 'success', 'ml.metric.loss': 0.25 });
    expect(userSpanParent).toBe(runSpan.spanId);
    expect(spans.find((s) => s.name === 'eval')!.parentSpanId).toBe(runSpan.spanId);

    const records = logBatches.flatMap((b) => b.records);
    expect(records.map((r) => r.eventName)).toEqual(['ml.run.start', ...Array<string>(6).fill('ml.metric'), 'ml.run.end']);
    const points = records.filter((r) => r.eventName === 'ml.metric').map((r) => {
      const a = attributesOf(r.attributes);
      expect(r.traceId).toBe(runSpan.traceId);
      expect(r.spanId).toBe(runSpan.spanId);
      return [a['ml.metric.key'], a['ml.metric.step'], fromMetricAttributeValue(a['ml.metric.value'])];
    });
    expect(points).toEqual([
      ['loss', 1, Number.NaN],
      ['acc', 1, 0.5],
      ['loss', 2, Infinity],
      ['acc', 2, -Infinity],
      ['loss', 3, 0.25],
      ['acc', 3, 1],
    ]);
  } finally {
    for (const key of ENV_KEYS) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    await sink.close();
  }
}
