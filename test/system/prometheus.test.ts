// 2. System metrics through OpenTelemetry: OtelLogger (OTLP/HTTP protobuf) → a real Collector
// (otelcol-runtel, prometheus exporter) → a real Prometheus. Every host and process series is
// queryable by the run id, under the semantic conventions' names (as the collector spells them
// for Prometheus), with values the sampler took.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { CompositeLogger, InMemoryLogger, OtelLogger } from '../../src/index.js';
import type { SystemMetricsEvent } from '../../src/core/events.js';
import { freePort, startCollector, startPrometheus } from '../services/index.js';
import type { CollectorHandle, PrometheusHandle } from '../services/index.js';
import { poll, promQuery, setupOrFail } from '../otel/real/util.js';

let prometheus: PrometheusHandle | undefined;
let collector: CollectorHandle | undefined;
let otlpUrl = '';

const ready = setupOrFail(async () => {
  const [otlpHttp, promExporter, health] = [await freePort(), await freePort(), await freePort()];
  prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${promExporter}`], scrapeIntervalSeconds: 1 });
  collector = await startCollector(
    `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlpHttp}
processors:
  batch:
    timeout: 200ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:${promExporter}
extensions:
  health_check:
    endpoint: 127.0.0.1:${health}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [prometheus]
`,
    { readyUrl: `http://127.0.0.1:${health}/` },
  );
  otlpUrl = `http://127.0.0.1:${otlpHttp}`;
});

afterAll(async () => {
  await collector?.stop();
  await prometheus?.stop();
});

/** Prometheus name (as the collector's exporter writes it), extra labels, the sample key and its factor to the OTel unit. */
const EXPECTED: Array<[string, Record<string, string>, string, number]> = [
  ['system_cpu_utilization_ratio', {}, 'cpu_utilization_percentage', 0.01],
  ['system_memory_usage_bytes', { system_memory_state: 'used' }, 'system_memory_usage_megabytes', 1e6],
  ['system_memory_utilization_ratio', { system_memory_state: 'used' }, 'system_memory_usage_percentage', 0.01],
  ['system_filesystem_usage_bytes', { system_filesystem_state: 'used', system_filesystem_mountpoint: '/' }, 'disk_usage_megabytes', 1e6],
  ['system_filesystem_usage_bytes', { system_filesystem_state: 'free', system_filesystem_mountpoint: '/' }, 'disk_available_megabytes', 1e6],
  ['system_filesystem_utilization_ratio', { system_filesystem_state: 'used', system_filesystem_mountpoint: '/' }, 'disk_usage_percentage', 0.01],
  ['system_network_io_bytes_total', { network_io_direction: 'receive' }, 'network_receive_megabytes', 1e6],
  ['system_network_io_bytes_total', { network_io_direction: 'transmit' }, 'network_transmit_megabytes', 1e6],
  ['process_memory_usage_bytes', {}, 'process_memory_rss_megabytes', 1e6],
  ['v8js_memory_heap_used_bytes', {}, 'process_heap_used_megabytes', 1e6],
  ['nodejs_eventloop_delay_p99_seconds', {}, 'event_loop_delay_p99_milliseconds', 1e-3],
  ['nodejs_eventloop_delay_max_seconds', {}, 'event_loop_delay_max_milliseconds', 1e-3],
  ['process_cpu_utilization_ratio', {}, 'process_cpu_percentage', 0],
  // From a stand-in nvidia-smi printing one A100's readings (test/fixtures/nvidia-smi).
  ['hw_gpu_utilization_ratio', { hw_id: 'gpu_0', hw_type: 'gpu' }, 'gpu_0_utilization_percentage', 0.01],
  ['hw_gpu_memory_usage_bytes', { hw_id: 'gpu_0', hw_type: 'gpu' }, 'gpu_0_memory_usage_megabytes', 1e6],
  ['hw_gpu_memory_utilization_ratio', { hw_id: 'gpu_0', hw_type: 'gpu' }, 'gpu_0_memory_usage_percentage', 0.01],
  ['hw_power_watts', { hw_id: 'gpu_0', hw_type: 'gpu' }, 'gpu_0_power_usage_watts', 1],
];

function fakeNvidiaSmi(): string {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-nvsmi-'));
  const script = join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh\ncat '${join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nvidia-smi', 'one-gpu.csv')}'\n`);
  chmodSync(script, 0o755);
  return script;
}

describe('system metrics → Collector → Prometheus', () => {
  it('2. host and process metrics are queryable with the run id, under semantic-convention names', async () => {
    ready();
    const resource = resourceFromAttributes({ 'service.name': 'runtel-system-metrics' });
    const reader = new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${otlpUrl}/v1/metrics` }), exportIntervalMillis: 300 });
    const meterProvider = new MeterProvider({ resource, readers: [reader] });
    const loggerProvider = new LoggerProvider({ resource });
    const tracerProvider = new BasicTracerProvider({ resource });
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, new OtelLogger({ meterProvider, loggerProvider, tracerProvider })], { systemMetrics: true, systemMetricsIntervalMillis: 100 });
    process.env.RUNTEL_NVIDIA_SMI = fakeNvidiaSmi();
    const run = logger.startRun({ name: 'prom-system', experiment: 'system-prom' });
    delete process.env.RUNTEL_NVIDIA_SMI;
    const other = logger.startRun({ name: 'prom-other', experiment: 'system-prom', activate: false });
    try {
      const selector = (name: string) => `${name}{ml_run_id="${run.id}"}`;
      await poll(
        'every system series of the run in Prometheus',
        async () => {
          for (const [name, labels] of EXPECTED) {
            const found = await promQuery(prometheus!.url, selector(name));
            if (!found.some((s) => Object.entries(labels).every(([k, v]) => s.metric[k] === v))) return undefined;
          }
          return true;
        },
        30_000,
      );
      const samples = memory.backend.events.filter((e): e is SystemMetricsEvent => e.type === 'system_metrics' && e.runId === run.id);
      expect(samples.length).toBeGreaterThan(2);
      for (const [name, labels, key, factor] of EXPECTED) {
        const series = (await promQuery(prometheus!.url, selector(name))).filter((s) => Object.entries(labels).every(([k, v]) => s.metric[k] === v));
        expect(series, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
        const s = series[0]!;
        expect(s.metric).toMatchObject({ ml_run_name: 'prom-system', ml_experiment_name: 'system-prom', exported_job: 'runtel-system-metrics' });
        const value = Number(s.value[1]);
        if (factor === 0) {
          expect(value, name).toBeGreaterThanOrEqual(0);
          continue;
        }
        // One of the samples the run took (Prometheus may show an earlier one than the latest).
        const taken = samples.map((e) => e.values[`system/${key}`]! * factor);
        expect(taken.some((t) => Math.abs(t - value) <= Math.abs(t) * 1e-9), `${name} ${value} among ${taken.join(', ')}`).toBe(true);
      }
      // The other top-level run has its own series.
      expect(await promQuery(prometheus!.url, `system_cpu_utilization_ratio{ml_run_id="${other.id}"}`)).toHaveLength(1);
    } finally {
      await run.finish();
      await other.finish();
      await logger.shutdown();
      await meterProvider.shutdown();
    }
  }, 120_000);
});
