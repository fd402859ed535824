// runtel → a real OpenTelemetry Collector (otelcol-runtel) over OTLP/HTTP, once with protobuf and
// once with JSON → traces on to Jaeger v2 (otlp gRPC exporter), metrics to the collector's
// `prometheus` exporter, scraped by a real Prometheus. Read back from Prometheus's and Jaeger's
// HTTP APIs: one `ml_metric` series per (run, key) with runtel's labels and the run's last value,
// and the run spans (nested) in Jaeger.
import { afterAll, describe, expect, it } from 'vitest';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OtelLogger } from '../../../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../../../src/otel/CountingBatchLogRecordProcessor.js';
import { freePort, startCollector, startJaeger, startPrometheus } from '../../services/index.js';
import type { CollectorHandle, JaegerHandle, PrometheusHandle } from '../../services/index.js';
import { jaegerTracesWithSpans, parentOf, poll, promQuery, setupOrFail, tagMap, tagValue } from './util.js';

type Protocol = 'http/protobuf' | 'http/json';

let jaeger: JaegerHandle | undefined;
let prometheus: PrometheusHandle | undefined;
let collector: CollectorHandle | undefined;
let otlpUrl = '';
let scrapeTarget = '';
/** Log records runtel handed to the collector so far (both cases): its debug exporter must count as many. */
let logRecordsSent = 0;

/** The log records the collector's debug exporter reported (`"log records": N` per batch). */
function logRecordsThroughCollector(): number {
  return [...collector!.logs().matchAll(/"log records": (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

function collectorConfig(p: { otlpHttp: number; jaegerGrpc: number; prometheus: number; health: number }): string {
  return `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${p.otlpHttp}
processors:
  batch:
    timeout: 200ms
exporters:
  otlp_grpc/jaeger:
    endpoint: 127.0.0.1:${p.jaegerGrpc}
    tls:
      insecure: true
  prometheus:
    endpoint: 127.0.0.1:${p.prometheus}
  debug:
    verbosity: basic
extensions:
  health_check:
    endpoint: 127.0.0.1:${p.health}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc/jaeger]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [prometheus]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
`;
}

const ready = setupOrFail(async () => {
  const [otlpHttp, promExporter, health] = [await freePort(), await freePort(), await freePort()];
  scrapeTarget = `127.0.0.1:${promExporter}`;
  [jaeger, prometheus] = await Promise.all([startJaeger(), startPrometheus({ scrapeTargets: [scrapeTarget], scrapeIntervalSeconds: 1 })]);
  collector = await startCollector(collectorConfig({ otlpHttp, jaegerGrpc: jaeger.otlpGrpcPort, prometheus: promExporter, health }), {
    readyUrl: `http://127.0.0.1:${health}/`,
  });
  otlpUrl = `http://127.0.0.1:${otlpHttp}`;
});

afterAll(async () => {
  await collector?.stop();
  await Promise.all([prometheus?.stop(), jaeger?.stop()]);
});

/** Providers of one "process" exporting with `protocol` to the collector; nothing global. */
function otelVia(protocol: Protocol, serviceName: string) {
  const json = protocol === 'http/json';
  const resource = resourceFromAttributes({ 'service.name': serviceName });
  const traceExporter = json ? new JsonTraceExporter({ url: `${otlpUrl}/v1/traces` }) : new ProtoTraceExporter({ url: `${otlpUrl}/v1/traces` });
  const metricExporter = json ? new JsonMetricExporter({ url: `${otlpUrl}/v1/metrics` }) : new ProtoMetricExporter({ url: `${otlpUrl}/v1/metrics` });
  const logExporter = json ? new JsonLogExporter({ url: `${otlpUrl}/v1/logs` }) : new ProtoLogExporter({ url: `${otlpUrl}/v1/logs` });
  const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(traceExporter)] });
  // Exported only by the final flush: the first value Prometheus sees must be the final one.
  const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000, exportTimeoutMillis: 10_000 });
  const meterProvider = new MeterProvider({ resource, readers: [metricReader] });
  const processor = new CountingBatchLogRecordProcessor({ exporter: logExporter });
  const loggerProvider = new LoggerProvider({ resource, processors: [processor] });
  const logger = new OtelLogger({ tracerProvider, meterProvider, loggerProvider, delivery: processor, exclusiveProcessor: processor, flushTimeoutMillis: 20_000 });
  return {
    logger,
    processor,
    shutdown: () => Promise.all([tracerProvider.shutdown(), meterProvider.shutdown(), loggerProvider.shutdown()]),
  };
}

describe.each<[Protocol, string]>([
  ['http/protobuf', 'proto'],
  ['http/json', 'json'],
])('runtel → otelcol-runtel (OTLP %s) → Prometheus and Jaeger', (protocol, tag) => {
  const experiment = `prom-${tag}`;
  const service = `runtel-collector-${tag}`;

  it('exposes each run\'s last value as an ml_metric series with runtel\'s labels, and the spans reach Jaeger', async () => {
    ready();
    const otel = otelVia(protocol, service);
    const expected = new Map<string, { runName: string; key: string; value: number }>(); // by `${runId}/${key}`
    const parent = otel.logger.startRun({ name: `${tag}-sweep`, experiment, config: { kind: 'sweep' } });
    const children = [0, 1].map((i) => otel.logger.startRun({ name: `${tag}-trial-${i}`, experiment, parent, config: { lr: 10 ** -(i + 1) } }));
    for (const [i, run] of children.entries()) {
      let last = { loss: 0, acc: 0, tokens: 0 };
      for (let step = 0; step < 50; step++) {
        last = { loss: 1 / (3 + step + i * 7), acc: step / 49 - i / 1000, tokens: (step + 1) * 4096 * (i + 1) };
        run.logMetrics(last, { step });
      }
      for (const [key, value] of Object.entries(last)) expected.set(`${run.id}/${key}`, { runName: run.name, key, value });
    }
    parent.logMetrics({ best_loss: 1 / 52 }, { step: 0 });
    expected.set(`${parent.id}/best_loss`, { runName: parent.name, key: 'best_loss', value: 1 / 52 });
    for (const run of children) await run.finish('success');
    await parent.finish('success');
    await otel.logger.forceFlush();
    await otel.logger.shutdown();
    await otel.shutdown();
    expect(otel.processor.deliveryStats()).toMatchObject({ undelivered: 0, exported: otel.processor.deliveryStats().accepted });
    expect(otel.processor.deliveryStats().accepted).toBeGreaterThan(300);
    logRecordsSent += otel.processor.deliveryStats().accepted;

    // Prometheus: one series per (run, key), all present at once, each with the final value.
    const selector = `ml_metric{ml_experiment_name="${experiment}"}`;
    let lastSeen = 0;
    const samples = await poll(
      () => `prometheus: ${expected.size} series of ${selector} (last seen: ${lastSeen})`,
      async () => {
        const result = await promQuery(prometheus!.url, selector);
        lastSeen = result.length;
        return result.length >= expected.size ? result : undefined;
      },
      30_000,
    );
    expect(samples).toHaveLength(expected.size);
    const seen = new Map<string, number>();
    for (const sample of samples) {
      const labels = sample.metric;
      // The collector's prometheus exporter: dots become underscores; service.name becomes `job`,
      // which Prometheus renames `exported_job` (its own scrape job wins); the scope becomes otel_scope_name.
      expect(Object.keys(labels).sort()).toEqual(
        ['__name__', 'exported_job', 'instance', 'job', 'ml_experiment_name', 'ml_metric_key', 'ml_run_id', 'ml_run_name', 'otel_scope_name'].sort(),
      );
      expect(labels).toMatchObject({ __name__: 'ml_metric', job: 'runtel', instance: scrapeTarget, exported_job: service, otel_scope_name: 'runtel' });
      const want = expected.get(`${labels.ml_run_id}/${labels.ml_metric_key}`);
      expect(want, `unexpected series ${JSON.stringify(labels)}`).toBeDefined();
      expect(labels.ml_run_name).toBe(want!.runName);
      seen.set(`${labels.ml_run_id}/${labels.ml_metric_key}`, Number(sample.value[1]));
    }
    expect(Object.fromEntries(seen)).toEqual(Object.fromEntries([...expected].map(([k, v]) => [k, v.value])));

    // The other instruments, under the names the collector gives them.
    const steps = await promQuery(prometheus!.url, `ml_run_step{ml_experiment_name="${experiment}"}`);
    expect(Object.fromEntries(steps.map((s) => [s.metric.ml_run_id, Number(s.value[1])]))).toEqual({
      [parent.id]: 0,
      [children[0]!.id]: 49,
      [children[1]!.id]: 49,
    });
    const runs = await promQuery(prometheus!.url, `ml_runs_total{ml_experiment_name="${experiment}"}`);
    expect(runs.map((s) => [s.metric.ml_run_status, Number(s.value[1])])).toEqual([['success', 3]]);
    const durations = await promQuery(prometheus!.url, `ml_run_duration_seconds_count{ml_experiment_name="${experiment}"}`);
    expect(durations.map((s) => [s.metric.ml_run_status, Number(s.value[1])])).toEqual([['success', 3]]);
    const inf = await promQuery(prometheus!.url, `ml_run_duration_seconds_bucket{ml_experiment_name="${experiment}",le="+Inf"}`);
    expect(inf.map((s) => Number(s.value[1]))).toEqual([3]);

    // Jaeger, through the collector's otlp (gRPC) exporter: one trace, the trials under the sweep.
    const traces = await jaegerTracesWithSpans(jaeger!.queryUrl, service, 3);
    expect(traces).toHaveLength(1);
    const spans = traces[0]!.spans;
    expect(spans).toHaveLength(3);
    const spanOf = (runId: string) => spans.find((s) => tagValue(s, 'ml.run.id') === runId)!;
    const root = spanOf(parent.id);
    expect(root.operationName).toBe(`${tag}-sweep`);
    expect(parentOf(root)).toBeUndefined();
    expect(tagMap(root.tags).get('ml.metric.best_loss')).toEqual({ type: 'float64', value: 1 / 52 });
    for (const run of children) {
      const span = spanOf(run.id);
      expect(span.operationName).toBe(run.name);
      expect(parentOf(span)).toBe(root.spanID);
      const tags = tagMap(span.tags);
      expect(tags.get('ml.param.lr')).toEqual({ type: 'string', value: String(10 ** -(children.indexOf(run) + 1)) });
      expect(tags.get('ml.run.status')?.value).toBe('success');
      expect(tags.get('otel.status_code')?.value).toBe('OK');
      for (const key of ['loss', 'acc', 'tokens']) {
        expect(tags.get(`ml.metric.${key}`)?.value).toBe(expected.get(`${run.id}/${key}`)!.value);
      }
      expect(tags.get('ml.metric.tokens')?.type).toBe('int64');
    }
    expect(traces[0]!.processes[root.processID]!.serviceName).toBe(service);

    // The logs pipeline took every record too, and the collector logged no warning or error.
    let counted = 0;
    await poll(
      () => `collector debug exporter: ${logRecordsSent} log records (counted ${counted})`,
      () => Promise.resolve((counted = logRecordsThroughCollector()) >= logRecordsSent ? true : undefined),
      10_000,
    );
    expect(counted).toBe(logRecordsSent);
    expect(collector!.logs()).not.toMatch(/\t(warn|error)\t/);
  }, 120_000);
});
