// System samples through the OTel backend: one `ml.system` record per sample, which the shared
// translator (the bridge's) turns back into the same system_metrics event, once; and the
// semantic-convention instruments with the run's identity, read from a real MeterProvider.
import { describe, expect, it } from 'vitest';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { CompositeLogger, InMemoryLogger, OtelLogger, OtelRunTranslator } from '../../src/index.js';
import type { SystemMetricsEvent } from '../../src/core/events.js';
import type { OtelLogInput } from '../../src/otel/translate/inputs.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('system samples through the OTel backend', () => {
  it('become ml.system records that translate back to the same events, and gauges with the run id', async () => {
    const logs = new InMemoryLogRecordExporter();
    const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logs })] });
    const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, new OtelLogger({ loggerProvider, meterProvider, tracerProvider: new BasicTracerProvider() })], { systemMetrics: true, systemMetricsIntervalMillis: 50 });
    const run = logger.startRun({ name: 'otel-system', experiment: 'sys' });
    const child = logger.startRun({ name: 'child', nested: true });
    await sleep(300);
    await reader.forceFlush();
    await child.finish();
    await run.finish();
    await logger.forceFlush();
    const records = logs.getFinishedLogRecords();
    await logger.shutdown();

    const sent = memory.backend.events.filter((e): e is SystemMetricsEvent => e.type === 'system_metrics');
    expect(sent.length).toBeGreaterThanOrEqual(3);
    const system = records.filter((r) => r.eventName === 'ml.system');
    expect(system).toHaveLength(sent.length);
    expect(system.every((r) => r.attributes['ml.run.id'] === run.id)).toBe(true);
    expect(system[0]!.attributes['ml.system.cpu_utilization_percentage']).toBe(sent[0]!.values['system/cpu_utilization_percentage']);

    // The bridge's translator: the same events, and a resent batch adds nothing.
    const inputs: OtelLogInput[] = records.map((r) => ({ eventName: r.eventName, attributes: { ...r.attributes }, timeMillis: r.hrTime[0] * 1000 + Math.round(r.hrTime[1] / 1e6) }));
    const t = new OtelRunTranslator();
    const translated = t.logs(inputs).filter((e) => e.type === 'system_metrics');
    expect(translated).toEqual(sent);
    expect(t.logs(inputs).filter((e) => e.type === 'system_metrics')).toEqual([]);

    // The instruments, as collected before the end: semantic-convention names, the run's identity.
    const metrics = metricExporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
    const byName = new Map(metrics.map((m) => [m.descriptor.name, m]));
    for (const name of ['system.cpu.utilization', 'system.memory.usage', 'system.memory.utilization', 'system.filesystem.usage', 'system.filesystem.utilization', 'system.network.io', 'process.cpu.utilization', 'process.memory.usage', 'v8js.memory.heap.used', 'nodejs.eventloop.delay.p99', 'nodejs.eventloop.delay.max']) {
      const m = byName.get(name);
      expect(m, name).toBeDefined();
      for (const point of m!.dataPoints) expect(point.attributes, name).toMatchObject({ 'ml.run.id': run.id, 'ml.run.name': 'otel-system', 'ml.experiment.name': 'sys' });
    }
    const mem = byName.get('system.memory.usage')!;
    expect(mem.descriptor.unit).toBe('By');
    expect(mem.dataPoints.map((p) => p.attributes['system.memory.state'])).toEqual(['used']);
    const used = mem.dataPoints[0]!.value as number;
    expect(sent.map((e) => e.values['system/system_memory_usage_megabytes']! * 1e6)).toContain(used);
    const fs = byName.get('system.filesystem.usage')!;
    expect(fs.dataPoints.map((p) => p.attributes['system.filesystem.state']).sort()).toEqual(['free', 'used']);
    // Nested runs are not sampled: no series of the child.
    expect(metrics.flatMap((x) => x.dataPoints as Array<{ attributes: Record<string, unknown> }>).some((p) => p.attributes['ml.run.id'] === child.id)).toBe(false);
  });
});
