// Runs through OtelLogger into a real Jaeger v2 (OTLP/HTTP protobuf, via startOtel), read back from
// Jaeger's query API: one trace per top-level run, trials as children of their experiment's run,
// exact params/tags/metric summaries, error status for a failed trial, and a user span made inside
// withRun as a child of the run. Logs and metrics go to a local OTLP sink (Jaeger stores traces only);
// the log records must point at the very spans Jaeger stored.
import { afterAll, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { withRun } from '../../../src/core/context.js';
import { Experiment } from '../../../src/experiment/Experiment.js';
import type { ExperimentSummary } from '../../../src/experiment/Experiment.js';
import { OtelLogger } from '../../../src/otel/OtelLogger.js';
import { startOtel } from '../../../src/otel/startOtel.js';
import type { OtelHandle } from '../../../src/otel/startOtel.js';
import { fromMetricAttributeValue } from '../../../src/otel/conventions.js';
import { startJaeger } from '../../services/index.js';
import type { JaegerHandle } from '../../services/index.js';
import { attributesOf, decodeProtobufLogs } from '../otlp.js';
import type { OtlpLogRecord } from '../otlp.js';
import { getJson, jaegerTraces, jaegerTracesWithSpans, parentOf, setupOrFail, startOtlpSink, tagMap, tagValue, tagsWithPrefix } from './util.js';
import type { JaegerSpan, JaegerTrace, OtlpSink } from './util.js';

const SERVICE = 'runtel-jaeger-test';
const ENV_KEYS = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
];

const LRS = [0.1, 0.01, 0.001] as const;
/** The trial with this lr throws: its run fails. */
const FAILING_LR = 0.001;
const lossAt = (lr: number, step: number): number => 1 / (1 + step * lr * 10);

let jaeger: JaegerHandle | undefined;
let sink: OtlpSink | undefined;
let otel: OtelHandle | undefined;
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

// What the scenario logged, for the assertions.
let summary: ExperimentSummary<{ lr: number }> | undefined;
let standaloneId = '';
let userSpanParentSeenInside: string | undefined;
let traces: JaegerTrace[] = [];
let records: OtlpLogRecord[] = [];

const ready = setupOrFail(async () => {
  jaeger = await startJaeger();
  sink = await startOtlpSink();
  for (const key of ENV_KEYS) delete process.env[key];
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = `${jaeger.otlpHttpUrl}/v1/traces`;
  process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = `${sink.url}/v1/metrics`;
  process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT = `${sink.url}/v1/logs`;
  otel = startOtel({ serviceName: SERVICE, protocol: 'http/protobuf', metricExportIntervalMillis: 60_000 });
  const logger = new OtelLogger({ delivery: otel, exclusiveProcessor: otel.logRecordProcessor, flushTimeoutMillis: 20_000 });

  // Top-level run 1: a grid search, one child run per trial, one of which fails.
  const experiment = new Experiment({ logger, name: 'jaeger-sweep', config: { model: 'mlp', layers: [64, 32] }, tags: { team: 'vision' } });
  summary = await experiment.run({ grid: { lr: LRS }, concurrency: 2 }, async (params, run) => {
    for (let step = 0; step < 5; step++) {
      run.logMetrics({ loss: lossAt(params.lr, step), epoch_int: step * 2 }, { step });
      await new Promise((resolve) => setImmediate(resolve));
    }
    run.setTags({ phase: 'warmup' });
    run.setTags({ phase: 'done' }); // last write wins
    if (params.lr === FAILING_LR) throw new RangeError(`diverged at lr=${params.lr}`);
    return lossAt(params.lr, 4);
  });

  // Top-level run 2: withRun, with a user span inside the callback and odd metric values.
  await withRun(
    logger,
    { name: 'jaeger-standalone', experiment: 'jaeger-sweep', config: { batch_size: 32, optimizer: { name: 'adam', beta1: 0.9 } }, tags: { owner: 'ci' } },
    async (run) => {
      standaloneId = run.id;
      run.logMetrics({ loss: 0.5, weird: 1, huge: 1 }, { step: 1 });
      run.logMetrics({ loss: 0.125, weird: Number.NaN, huge: 1e300 }, { step: 2 });
      run.logMetrics({ loss: 0.9 }, { step: 0 }); // an older step: not the latest
      userSpanParentSeenInside = trace.getActiveSpan()?.spanContext().spanId;
      await trace.getTracer('user').startActiveSpan('user-eval', async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        span.setAttribute('user.attr', 'x');
        span.end();
      });
    },
  );

  await logger.shutdown();
  await otel.shutdown(); // flushes the BatchSpanProcessor into Jaeger
  expect(otel.deliveryStats().undelivered).toBe(0);

  // 4 spans in the sweep's trace (parent + 3 trials), 2 in the standalone one (run + user span).
  traces = await jaegerTracesWithSpans(jaeger.queryUrl, SERVICE, 6);
  records = sink.requests.filter((r) => r.path === '/v1/logs').flatMap((r) => decodeProtobufLogs(r.body).flatMap((b) => b.records));
}, 120_000);

afterAll(async () => {
  await otel?.shutdown();
  await sink?.close();
  await jaeger?.stop();
  for (const key of ENV_KEYS) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

function spanOfRun(runId: string): { trace: JaegerTrace; span: JaegerSpan } {
  const found = traces.flatMap((t) => t.spans.filter((s) => tagValue(s, 'ml.run.id') === runId).map((span) => ({ trace: t, span })));
  if (found.length !== 1) throw new Error(`expected one span for run ${runId}, found ${found.length}`);
  return found[0]!;
}

describe('OtelLogger → OTLP/HTTP → Jaeger v2', () => {
  it('stores one trace per top-level run, and nothing else', async () => {
    ready();
    expect(traces).toHaveLength(2);
    expect(traces.map((t) => t.spans.length).sort()).toEqual([2, 4]);
    // Nothing arrives late: still 6 spans after another look.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const again = await jaegerTraces(jaeger!.queryUrl, SERVICE);
    expect(again.reduce((n, t) => n + t.spans.length, 0)).toBe(6);
    for (const t of traces) {
      const roots = t.spans.filter((s) => parentOf(s) === undefined);
      expect(roots).toHaveLength(1);
      expect(t.processes[t.spans[0]!.processID]!.serviceName).toBe(SERVICE);
      for (const s of t.spans) expect(s.traceID).toBe(t.traceID);
    }
    const sweep = spanOfRun(summary!.runId);
    const standalone = spanOfRun(standaloneId);
    expect(sweep.trace.traceID).not.toBe(standalone.trace.traceID);
    expect(parentOf(sweep.span)).toBeUndefined();
    expect(parentOf(standalone.span)).toBeUndefined();
    expect(sweep.span.operationName).toBe('jaeger-sweep');
    expect(standalone.span.operationName).toBe('jaeger-standalone');
  });

  it('makes every trial span a child of its experiment run span, in the same trace', () => {
    ready();
    const parent = spanOfRun(summary!.runId);
    expect(summary!.trials).toHaveLength(LRS.length);
    for (const trial of summary!.trials) {
      const { trace: t, span } = spanOfRun(trial.runId);
      expect(t.traceID).toBe(parent.trace.traceID);
      expect(parentOf(span)).toBe(parent.span.spanID);
      expect(span.operationName).toBe(`jaeger-sweep-trial-${trial.index}`);
      expect(tagValue(span, 'ml.run.parent_id')).toBe(summary!.runId);
      // The child lies inside its parent in time (µs).
      expect(span.startTime).toBeGreaterThanOrEqual(parent.span.startTime);
      expect(span.startTime + span.duration).toBeLessThanOrEqual(parent.span.startTime + parent.span.duration);
    }
  });

  it('carries the exact params, tags and identity attributes', () => {
    ready();
    const parent = spanOfRun(summary!.runId).span;
    expect(tagsWithPrefix(parent.tags, 'ml.param.')).toEqual({
      'ml.param.model': 'mlp',
      'ml.param.layers': '[64,32]',
      'ml.param.search.grid.lr': '[0.1,0.01,0.001]',
      'ml.param.search.concurrency': '2',
    });
    const best = summary!.best!;
    expect(tagsWithPrefix(parent.tags, 'ml.tag.')).toEqual({
      'ml.tag.team': 'vision',
      'ml.tag.objective': 'objective',
      'ml.tag.goal': 'minimize',
      'ml.tag.best_trial_id': best.runId,
      'ml.tag.best_trial_name': best.name,
      'ml.tag.best_value': String(best.value),
    });
    expect(tagsWithPrefix(parent.tags, 'ml.run.')).toEqual({ 'ml.run.id': summary!.runId, 'ml.run.name': 'jaeger-sweep', 'ml.run.status': 'success', 'ml.run.metric_records_count': 3 });
    expect(tagValue(parent, 'ml.experiment.name')).toBe('jaeger-sweep');

    for (const trial of summary!.trials) {
      const span = spanOfRun(trial.runId).span;
      expect(tagsWithPrefix(span.tags, 'ml.param.')).toEqual({ 'ml.param.lr': String(trial.params.lr) });
      expect(tagsWithPrefix(span.tags, 'ml.tag.')).toEqual({ 'ml.tag.trial_index': String(trial.index), 'ml.tag.phase': 'done' });
      expect(tagValue(span, 'ml.experiment.name')).toBe('jaeger-sweep');
      expect(tagValue(span, 'ml.run.name')).toBe(trial.name);
    }

    const standalone = spanOfRun(standaloneId).span;
    const tags = tagMap(standalone.tags);
    for (const [key, value] of Object.entries({
      'ml.param.batch_size': '32',
      'ml.param.optimizer.name': 'adam',
      'ml.param.optimizer.beta1': '0.9',
      'ml.tag.owner': 'ci',
    })) {
      expect(tags.get(key)).toEqual({ type: 'string', value });
    }
    expect(Object.keys(tagsWithPrefix(standalone.tags, 'ml.param.')).sort()).toEqual(['ml.param.batch_size', 'ml.param.optimizer.beta1', 'ml.param.optimizer.name']);
    expect(tagsWithPrefix(standalone.tags, 'ml.tag.')).toEqual({ 'ml.tag.owner': 'ci' });
  });

  it('gives the failed trial error status and an exception, the others OK', () => {
    ready();
    for (const trial of summary!.trials) {
      const span = spanOfRun(trial.runId).span;
      const tags = tagMap(span.tags);
      if (trial.params.lr === FAILING_LR) {
        expect(trial.status).toBe('failed');
        expect(tags.get('ml.run.status')?.value).toBe('failed');
        expect(tags.get('otel.status_code')?.value).toBe('ERROR');
        expect(tags.get('error')).toEqual({ type: 'bool', value: true });
        expect(tags.get('otel.status_description')?.value).toBe(`RangeError: diverged at lr=${FAILING_LR}`);
        const exception = span.logs.map((l) => tagsWithPrefix(l.fields, '')).find((f) => f.event === 'exception');
        expect(exception).toMatchObject({ 'exception.type': 'RangeError', 'exception.message': `diverged at lr=${FAILING_LR}` });
        expect(String(exception!['exception.stacktrace'])).toContain('RangeError');
      } else {
        expect(trial.status).toBe('success');
        expect(tags.get('ml.run.status')?.value).toBe('success');
        expect(tags.get('otel.status_code')?.value).toBe('OK');
        expect(tags.has('error')).toBe(false);
        expect(span.logs).toEqual([]);
      }
    }
  });

  it('reports the failed status through the v3 (OTLP-shaped) API too', async () => {
    ready();
    const failed = summary!.trials.find((t) => t.status === 'failed')!;
    const { trace: t, span } = spanOfRun(failed.runId);
    const { status, body } = await getJson<{
      result: { resourceSpans: Array<{ scopeSpans: Array<{ scope: { name: string }; spans: Array<{ spanId: string; status?: { code?: number; message?: string } }> }> }> };
    }>(`${jaeger!.queryUrl}/api/v3/traces/${t.traceID}`);
    expect(status).toBe(200);
    const spans = body.result.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ ...s, scope: ss.scope.name }))));
    expect(spans).toHaveLength(4);
    const v3 = spans.find((s) => s.spanId === span.spanID)!;
    expect(v3).toBeDefined();
    expect(v3.scope).toBe('runtel');
    expect(v3.status?.code).toBe(2); // STATUS_CODE_ERROR
    expect(v3.status?.message).toBe(`RangeError: diverged at lr=${FAILING_LR}`);
  });

  it('puts each key\'s latest value on the span at finish (ml.metric.<key>), typed', () => {
    ready();
    for (const trial of summary!.trials) {
      const tags = tagMap(spanOfRun(trial.runId).span.tags);
      expect(tags.get('ml.metric.loss')).toEqual({ type: 'float64', value: lossAt(trial.params.lr, 4) });
      expect(tags.get('ml.metric.epoch_int')).toEqual({ type: 'int64', value: 8 });
      if (trial.status === 'success') expect(tags.get('ml.metric.objective')).toEqual({ type: 'float64', value: trial.value });
      else expect(tags.has('ml.metric.objective')).toBe(false);
    }
    const parent = tagMap(spanOfRun(summary!.runId).span.tags);
    expect(parent.get('ml.metric.best_objective')).toEqual({ type: 'float64', value: summary!.best!.value });
    expect(summary!.best!.value).toBe(lossAt(0.1, 4));
    expect(parent.get('ml.metric.trials_completed')).toEqual({ type: 'int64', value: 2 });
    expect(parent.get('ml.metric.trials_failed')).toEqual({ type: 'int64', value: 1 });

    // Latest = largest step (not the last logged); NaN and 1e300 travel as strings.
    const standalone = spanOfRun(standaloneId).span;
    expect(tagsWithPrefix(standalone.tags, 'ml.metric.')).toEqual({ 'ml.metric.loss': 0.125, 'ml.metric.weird': 'NaN', 'ml.metric.huge': '1e+300' });
    expect(fromMetricAttributeValue(tagValue(standalone, 'ml.metric.weird'))).toBeNaN();
    expect(fromMetricAttributeValue(tagValue(standalone, 'ml.metric.huge'))).toBe(1e300);
  });

  it('makes a user span started inside withRun a child of the run span', () => {
    ready();
    const { trace: t, span: runSpan } = spanOfRun(standaloneId);
    const user = t.spans.find((s) => s.operationName === 'user-eval');
    expect(user).toBeDefined();
    expect(parentOf(user!)).toBe(runSpan.spanID);
    expect(userSpanParentSeenInside).toBe(runSpan.spanID);
    expect(tagValue(user!, 'user.attr')).toBe('x');
    expect(tagValue(user!, 'otel.scope.name')).toBe('user');
    expect(tagValue(user!, 'ml.run.id')).toBeUndefined();
  });

  it("names Jaeger's spans in the run's log records (trace and span ids)", () => {
    ready();
    const runIds = [summary!.runId, ...summary!.trials.map((t) => t.runId), standaloneId];
    for (const runId of runIds) {
      const { span } = spanOfRun(runId);
      const mine = records.filter((r) => attributesOf(r.attributes)['ml.run.id'] === runId);
      expect(mine.map((r) => r.eventName)).toContain('ml.run.start');
      expect(mine.at(-1)?.eventName).toBe('ml.run.end');
      for (const r of mine) {
        expect(r.traceId).toBe(span.traceID);
        expect(r.spanId).toBe(span.spanID);
      }
    }
  });
});
