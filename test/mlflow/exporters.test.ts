// The OTel path: an app's own providers with the MLflow span and log record exporters (createMlflowExporters).
import { describe, expect, it } from 'vitest';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { InMemoryLogger, CompositeLogger, MlflowLogRecordExporter, MlflowSpanExporter, OtelLogger, createMlflowExporters, withRun } from '../../src/index.js';
import { MLFLOW_STORES, pyValue, readBackWithPython, runsByRuntelId, useMlflowServers } from './helpers.js';

// Both tests on both stores: NaN/±Infinity as each store keeps them, and the run search by tag that
// makes a replay idempotent is SQL.
const servers = useMlflowServers();

function appProviders(trackingUri: string) {
  const { spanExporter, logRecordExporter: logExporter } = createMlflowExporters({ trackingUri });
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  const loggerProvider = new LoggerProvider({ processors: [new BatchLogRecordProcessor({ exporter: logExporter, maxQueueSize: 100_000, scheduledDelayMillis: 200 })] });
  return {
    tracerProvider,
    loggerProvider,
    async shutdown() {
      await loggerProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}

describe.each(MLFLOW_STORES)('MLflow (%s store) through OTel exporters', (store) => {
  const mlflow = servers[store];

  it('runs logged through OtelLogger reach MLflow as they would directly: params, every point, status, nesting, artifacts', async () => {
    const experiment = 'otel-exporters';
    const app = appProviders(mlflow.server.url);
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, new OtelLogger({ tracerProvider: app.tracerProvider, loggerProvider: app.loggerProvider })]);
    let parentId = '';
    await withRun(logger, { name: 'search', experiment, config: { grid: { lr: [0.1, 0.2] } }, tags: { via: 'otel' } }, async (parent) => {
      parentId = parent.id;
      for (const lr of [0.1, 0.2]) {
        await withRun(logger, { name: `lr-${lr}`, experiment, nested: true, config: { lr } }, (trial) => {
          for (let step = 0; step < 200; step++) trial.logMetrics({ loss: lr / (step + 1), weird: step === 5 ? NaN : step === 6 ? -Infinity : 0 }, { step });
          if (lr === 0.2) throw new Error('diverged');
        }).catch(() => undefined);
      }
      parent.logModel({ best: 0.1 }, { name: 'best' });
    });
    await logger.shutdown();
    await app.shutdown();

    const py = await readBackWithPython(mlflow.server.url, experiment);
    expect(py).toHaveLength(3);
    const parent = py.find((r) => r.tags['runtel.run_id'] === parentId)!;
    expect(parent.status).toBe('FINISHED');
    expect(parent.params).toEqual(memory.getRun(parentId)!.params);
    expect(parent.tags.via).toBe('otel');
    expect(JSON.parse(Buffer.from(parent.artifacts['models/best/model.json']!, 'hex').toString())).toEqual({ best: 0.1 });
    for (const lr of [0.1, 0.2]) {
      const rec = memory.getRun(`lr-${lr}`)!;
      const trial = py.find((r) => r.tags['runtel.run_id'] === rec.id)!;
      expect(trial.tags['mlflow.parentRunId']).toBe(parent.run_id);
      expect(trial.status).toBe(lr === 0.2 ? 'FAILED' : 'FINISHED');
      expect(trial.params).toEqual({ lr: String(lr) });
      for (const key of ['loss', 'weird']) {
        const want = rec.metrics[key]!.map((s) => [s.step, s.value, Math.floor(s.timestamp)]);
        expect(trial.metrics[key]!.map(([step, value, ts]) => [step, pyValue(value), ts]), key).toEqual(want);
      }
    }
  });

  it('exporters are idempotent across restarts: the same records exported again add no run and no point', async () => {
    const experiment = 'otel-restart';
    const records: Array<{ kind: 'log' | 'span'; item: unknown }> = [];
    // Capture what the SDK hands the exporters, then replay it through a fresh exporter pair.
    const first = appProviders(mlflow.server.url);
    const logger = new OtelLogger({ tracerProvider: first.tracerProvider, loggerProvider: first.loggerProvider });
    // eslint-disable-next-line @typescript-eslint/unbound-method -- restored below; called with the right `this`
    const spanExport = MlflowSpanExporter.prototype.export;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- as above
    const logExport = MlflowLogRecordExporter.prototype.export;
    MlflowSpanExporter.prototype.export = function (spans, cb) { records.push(...spans.map((item) => ({ kind: 'span' as const, item }))); return spanExport.call(this, spans, cb); };
    MlflowLogRecordExporter.prototype.export = function (logs, cb) { records.push(...logs.map((item) => ({ kind: 'log' as const, item }))); return logExport.call(this, logs, cb); };
    try {
      await withRun(logger, { name: 'once', experiment, config: { a: 1 } }, (run) => {
        for (let step = 0; step < 50; step++) run.logMetrics({ m: step }, { step });
      });
      await logger.shutdown();
      await first.shutdown();
    } finally {
      MlflowSpanExporter.prototype.export = spanExport;
      MlflowLogRecordExporter.prototype.export = logExport;
    }
    const { spanExporter: replaySpan, logRecordExporter: replayLog } = createMlflowExporters({ trackingUri: mlflow.server.url });
    // One translator and one sender for both, so the span and the records of a run meet.
    expect(replaySpan.sink).toBe(replayLog.sink);
    await new Promise<void>((resolve) => replayLog.export(records.filter((r) => r.kind === 'log').map((r) => r.item) as never, () => resolve()));
    await new Promise<void>((resolve) => replaySpan.export(records.filter((r) => r.kind === 'span').map((r) => r.item) as never, () => resolve()));
    await replayLog.shutdown();
    await replaySpan.shutdown();

    const runs = await runsByRuntelId(mlflow.client, experiment);
    expect(runs.size).toBe(1);
    const run = [...runs.values()][0]!;
    expect(run.info.status).toBe('FINISHED');
    const history = await mlflow.client.getMetricHistory(run.info.run_id, 'm');
    expect(history.map((m) => Number(m.step)).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
