// The OTel path: an app's own providers export runtel's spans and log records with the W&B
// exporters (as a NodeSDK would), and W&B gets the same runs as from WandbLogger.

import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendFailure } from '../../src/core/errors.js';
import { Experiment } from '../../src/experiment/Experiment.js';
import { OtelLogger } from '../../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../../src/otel/CountingBatchLogRecordProcessor.js';
import { createWandbExporters } from '../../src/wandb/exporters.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { installContextManager } from '../otel/helpers.js';
import { WandbTestServer } from './server.js';
import { API_KEY_40, pointsOf, rowsWandbKeeps } from './helpers.js';

let server: WandbTestServer;
beforeAll(async () => {
  server = await WandbTestServer.start();
});
afterAll(async () => {
  await server.close();
});

describe('WandbSpanExporter and WandbLogRecordExporter', () => {
  it('turn runtel OTel data into W&B runs: history, config, summary, groups and exit codes', async () => {
    installContextManager();
    const failures: BackendFailure[] = [];
    const options = { baseUrl: server.url, apiKey: API_KEY_40, mode: 'online' as const, project: 'wandb-otel', flushIntervalMillis: 50, onError: (f: BackendFailure) => failures.push(f) };
    const { spanExporter, logRecordExporter: logExporter } = createWandbExporters(options);
    expect(spanExporter.sink).toBe(logExporter.sink); // one sender for both
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spanExporter, { scheduledDelayMillis: 20 })] });
    const processor = new CountingBatchLogRecordProcessor({ exporter: logExporter, scheduledDelayMillis: 20 });
    const loggerProvider = new LoggerProvider({ processors: [processor] });
    const meterProvider = new MeterProvider();
    const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, delivery: processor, flushTimeoutMillis: 20_000 });

    const run = logger.startRun({ name: 'otel-run', config: { lr: 0.01, net: { depth: 3 } }, tags: { source: 'otel' } });
    for (let step = 0; step < 5; step++) run.logMetrics({ loss: 1 / (step + 1), nan: step === 4 ? NaN : step }, { step });
    run.logMetrics({ val: 7 }, { step: 1 }); // late
    await run.finish();
    const failed = logger.startRun({ name: 'otel-failed' });
    failed.logMetrics({ loss: 3 }, { step: 0 });
    await failed.finish('failed', new Error('nope'));
    const experiment = new Experiment({ logger, name: 'otel-search' });
    const summary = await experiment.run({ grid: { lr: [0.1, 0.2] } }, (params) => params.lr);

    await logger.shutdown();
    await tracerProvider.shutdown();
    await loggerProvider.shutdown();
    await meterProvider.shutdown();

    expect(failures).toEqual([]);
    const stored = server.getRun('wandb-otel', wandbRunId(run.id))!;
    expect(stored).toMatchObject({ displayName: 'otel-run', complete: true, exitcode: 0 });
    expect(stored.config).toMatchObject({ lr: { value: 0.01 }, net: { value: { depth: 3 } }, runtel_run_id: { value: run.id } });
    expect(stored.tags).toEqual(['source=otel']);
    const rows = server.history(stored);
    expect(rowsWandbKeeps(rows)).toEqual(rows);
    expect(pointsOf(rows).map(([s, k, v]) => [s, k, Number.isNaN(v) ? 'NaN' : v])).toEqual([
      [0, 'loss', 1],
      [0, 'nan', 0],
      [1, 'loss', 0.5],
      [1, 'nan', 1],
      [1, 'val', 7],
      [2, 'loss', 1 / 3],
      [2, 'nan', 2],
      [3, 'loss', 0.25],
      [3, 'nan', 3],
      [4, 'loss', 0.2],
      [4, 'nan', 'NaN'],
    ]);
    expect(stored.historyLines.some((line) => line.includes('"nan":NaN'))).toBe(true);
    expect(stored.summary).toMatchObject({ loss: 0.2, val: 7 });
    expect(server.getRun('wandb-otel', wandbRunId(failed.id))).toMatchObject({ complete: true, exitcode: 1 });

    const rootId = wandbRunId(summary.runId);
    expect(server.getRun('wandb-otel', rootId)).toMatchObject({ group: rootId, jobType: 'parent', exitcode: 0 });
    for (const trial of summary.trials) expect(server.getRun('wandb-otel', wandbRunId(trial.runId))).toMatchObject({ group: rootId, jobType: 'trial', exitcode: 0 });
    // The exporters ask W&B for each run before streaming it (an exporter restart continues, never overwrites).
    expect(server.graphql('RunResumeStatus').length).toBeGreaterThanOrEqual(5);
  });
});
