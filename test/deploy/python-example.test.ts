// examples/python (a scikit-learn grid search logged with the OpenTelemetry Python SDK through
// examples/python/runtel_otel.py) → a real collector running collector-config/agent.yaml →
// traces + logs over otlphttp (encoding json) to a sink standing in for the bridge, traces to a
// real Jaeger, metrics to the collector's Prometheus exporter. Asserts the parent run and one
// nested run per candidate, with params, every metric step, nesting and status.
// The venv comes from `bash scripts/provision-example.sh`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCollector, startJaeger } from '../services/index.js';
import type { CollectorHandle, JaegerHandle } from '../services/index.js';
import { jaegerTracesWithSpans, parentOf, poll, setupOrFail, tagValue } from '../otel/real/util.js';
import { COLLECTOR_CONFIG_DIR, REPO_ROOT, collectorEnv, examplePython, runCommand, runFailingPythonRuns, startJsonSink } from './helpers.js';
import type { CollectorEnv, JsonSink, SinkLogRecord, SinkSpan } from './helpers.js';

const EPOCHS = 4;
const GRID = { alpha: [1e-4, 1e-2], eta0: [0.001, 0.01, 0.1] };
const CANDIDATES = GRID.alpha.length * GRID.eta0.length;
const TRIAL_KEYS = ['train/loss', 'val/accuracy', 'val/loss'];
const TOKEN = 'python-example-token';
const EXPERIMENT = `py-sklearn-${process.pid}`;

interface Summary {
  experiment: string;
  epochs: number;
  parent: { id: string; name: string };
  trials: Array<{ id: string; name: string; params: { alpha: number; eta0: number }; final: Record<string, number> }>;
}

let jaeger: JaegerHandle | undefined;
let collector: CollectorHandle | undefined;
let sink: JsonSink | undefined;
let ce: CollectorEnv | undefined;
let summary: Summary | undefined;
let stderr = '';
const tmp = mkdtempSync(join(tmpdir(), 'runtel-deploy-python-'));

const ready = setupOrFail(async () => {
  const python = examplePython();
  sink = await startJsonSink();
  jaeger = await startJaeger();
  ce = await collectorEnv({ jaegerEndpoint: `127.0.0.1:${jaeger.otlpGrpcPort}`, bridgeUrl: sink.url, token: TOKEN });
  collector = await startCollector(readFileSync(join(COLLECTOR_CONFIG_DIR, 'agent.yaml'), 'utf8'), { env: ce.env, readyUrl: ce.healthUrl });
  const summaryFile = join(tmp, 'summary.json');
  const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: ce.otlpHttpUrl, RUNTEL_EXPERIMENT: EXPERIMENT, OTEL_METRIC_EXPORT_INTERVAL: '60000' };
  for (const key of ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_HEADERS']) delete env[key];
  const result = await runCommand(python, ['train_sklearn.py', '--epochs', String(EPOCHS), '--summary-json', summaryFile], {
    cwd: join(REPO_ROOT, 'examples/python'),
    env,
    timeoutMs: 120_000,
  });
  stderr = result.stderr;
  if (result.code !== 0) throw new Error(`train_sklearn.py exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary;
}, 240_000);

afterAll(async () => {
  await collector?.stop();
  await Promise.all([jaeger?.stop(), sink?.close()]);
  rmSync(tmp, { recursive: true, force: true });
});

const recordsOf = (runId: string, event?: string): SinkLogRecord[] =>
  sink!.logs.filter((r) => r.attributes['ml.run.id'] === runId && (event === undefined || eventOf(r) === event));
/** The record type: the eventName field (preferred), else the `event.name` attribute. */
const eventOf = (r: SinkLogRecord): string => {
  const attr = r.attributes['event.name'];
  return r.eventName !== '' ? r.eventName : typeof attr === 'string' ? attr : '';
};

describe('examples/python (scikit-learn grid search) → collector (agent.yaml) → bridge sink, Jaeger, Prometheus exporter', () => {
  let spans: SinkSpan[] = [];

  it('the sink receives one span per run: the search, with one nested run per candidate', async () => {
    ready();
    const s = summary!;
    expect(s.trials).toHaveLength(CANDIDATES);
    expect(stderr).not.toMatch(/Traceback|Failed to export|Exception/);
    // Every run's end record and span (the script has shut its providers down: everything is sent).
    spans = await poll(
      () => `sink: ${CANDIDATES + 1} spans and ${CANDIDATES + 1} ml.run.end records (spans ${sink!.spans.length}, records ${sink!.logs.length})`,
      () => {
        const runSpans = sink!.spans.filter((sp) => sp.attributes['ml.experiment.name'] === EXPERIMENT);
        const ends = sink!.logs.filter((r) => eventOf(r) === 'ml.run.end');
        return Promise.resolve(runSpans.length >= CANDIDATES + 1 && ends.length >= CANDIDATES + 1 ? runSpans : undefined);
      },
      30_000,
    );
    expect(spans).toHaveLength(CANDIDATES + 1);
    const parent = spans.find((sp) => sp.attributes['ml.run.id'] === s.parent.id)!;
    expect(parent).toBeDefined();
    expect(parent).toMatchObject({ name: 'grid-search', parentSpanId: '', kind: 1, scope: 'runtel', status: { code: 1 } });
    expect(parent.resource['service.name']).toBe(EXPERIMENT);
    expect(parent.attributes).toMatchObject({
      'ml.run.name': 'grid-search',
      'ml.experiment.name': EXPERIMENT,
      'ml.run.status': 'success',
      'ml.param.dataset': 'breast_cancer',
      'ml.param.epochs': String(EPOCHS),
      'ml.param.grid.alpha': '[0.0001,0.01]',
      'ml.tag.best_run_id': expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect(parent.attributes['ml.run.parent_id']).toBeUndefined();
    expect(s.parent.id).toMatch(/^[0-9a-f]{32}$/);

    const seenParams = new Set<string>();
    for (const trial of s.trials) {
      expect(trial.id).toMatch(/^[0-9a-f]{32}$/);
      const span = spans.find((sp) => sp.attributes['ml.run.id'] === trial.id)!;
      expect(span, trial.name).toBeDefined();
      expect(span.name).toBe(trial.name);
      expect(span.traceId).toBe(parent.traceId);
      expect(span.parentSpanId).toBe(parent.spanId);
      expect(span.status.code).toBe(1);
      expect(span.attributes).toMatchObject({
        'ml.run.parent_id': s.parent.id,
        'ml.run.status': 'success',
        'ml.param.alpha': String(trial.params.alpha),
        'ml.param.eta0': String(trial.params.eta0),
      });
      for (const key of TRIAL_KEYS) expect(span.attributes[`ml.metric.${key}`], key).toBeCloseTo(trial.final[key]!, 12);
      seenParams.add(`${trial.params.alpha}/${trial.params.eta0}`);
    }
    expect(seenParams.size).toBe(CANDIDATES);
  });

  it('ml.run.start / ml.metric / ml.run.end records for every run, in the run span\'s context, every step', () => {
    ready();
    const s = summary!;
    // The pinned SDK sets the OTLP event_name field (not the deprecated event.name attribute).
    expect(sink!.logs.length).toBeGreaterThan(0);
    for (const r of sink!.logs) {
      expect(r.eventName).not.toBe('');
      expect(r.attributes['event.name']).toBeUndefined();
      expect(r.severityNumber).toBe(0);
      expect(r.hasBody).toBe(false);
      expect(r.scope).toBe('runtel');
      expect(r.resource['service.name']).toBe(EXPERIMENT);
    }
    const runs = [{ id: s.parent.id, name: s.parent.name }, ...s.trials];
    for (const run of runs) {
      const span = spans.find((sp) => sp.attributes['ml.run.id'] === run.id)!;
      for (const r of recordsOf(run.id)) {
        expect([r.traceId, r.spanId], `${run.name} ${r.eventName}`).toEqual([span.traceId, span.spanId]);
      }
      const [start, ...moreStarts] = recordsOf(run.id, 'ml.run.start');
      expect(moreStarts).toHaveLength(0);
      expect(start!.attributes).toMatchObject({ 'ml.run.name': run.name, 'ml.experiment.name': EXPERIMENT });
      expect(start!.timeUnixNano).toBe(span.startTimeUnixNano);
      const [end, ...moreEnds] = recordsOf(run.id, 'ml.run.end');
      expect(moreEnds).toHaveLength(0);
      // The end counts the run's ml.metric records, so a bridge that has them all forwards it at once.
      expect(end!.attributes).toEqual({ 'ml.run.id': run.id, 'ml.run.status': 'success', 'ml.run.metric_records_count': recordsOf(run.id, 'ml.metric').length });
      expect(end!.timeUnixNano).toBe(span.endTimeUnixNano);
    }

    // Trials: params in the start record, every (key, step) exactly once, the last step equal to the final value.
    for (const trial of s.trials) {
      const start = recordsOf(trial.id, 'ml.run.start')[0]!;
      expect(start.attributes).toMatchObject({
        'ml.run.parent_id': s.parent.id,
        'ml.param.alpha': String(trial.params.alpha),
        'ml.param.eta0': String(trial.params.eta0),
      });
      const points = recordsOf(trial.id, 'ml.metric').map((r) => ({
        key: r.attributes['ml.metric.key'] as string,
        step: r.attributes['ml.metric.step'] as number,
        value: r.attributes['ml.metric.value'] as number,
      }));
      expect(points.map((p) => `${p.key}@${p.step}`).sort()).toEqual(TRIAL_KEYS.flatMap((k) => Array.from({ length: EPOCHS }, (_, step) => `${k}@${step}`)).sort());
      for (const p of points) {
        expect(typeof p.value).toBe('number');
        if (p.key === 'val/accuracy') expect(p.value).toBeGreaterThanOrEqual(0);
        if (p.step === EPOCHS - 1) expect(p.value, p.key).toBeCloseTo(trial.final[p.key]!, 12);
      }
    }
    // The parent: best validation accuracy so far, one point per candidate, never decreasing.
    const best = recordsOf(s.parent.id, 'ml.metric')
      .map((r) => ({ key: r.attributes['ml.metric.key'], step: r.attributes['ml.metric.step'] as number, value: r.attributes['ml.metric.value'] as number }))
      .sort((a, b) => a.step - b.step);
    expect(best.map((p) => [p.key, p.step])).toEqual(Array.from({ length: CANDIDATES }, (_, i) => ['best/val_accuracy', i]));
    for (let i = 1; i < best.length; i++) expect(best[i]!.value).toBeGreaterThanOrEqual(best[i - 1]!.value);
    expect(best.at(-1)!.value).toBeCloseTo(Math.max(...s.trials.map((t) => t.final['val/accuracy']!)), 12);
    // The parent's tags came as an ml.tags record.
    expect(recordsOf(s.parent.id, 'ml.tags').map((r) => r.attributes['ml.tag.best_run_name'])).toEqual([expect.stringMatching(/^alpha=/)]);
  });

  it('the collector sent them with the bridge token, as JSON, and nothing was refused', () => {
    ready();
    const requests = sink!.requests.filter((r) => r.path === '/v1/traces' || r.path === '/v1/logs');
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) {
      expect(r.status).toBe(200);
      expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.headers['content-type']).toBe('application/json');
    }
    expect(collector!.logs()).not.toMatch(/\t(warn|error)\t/);
  });

  it('Jaeger has the run tree as one trace, under the experiment as service', async () => {
    ready();
    const s = summary!;
    const traces = await jaegerTracesWithSpans(jaeger!.queryUrl, EXPERIMENT, CANDIDATES + 1);
    expect(traces).toHaveLength(1);
    const root = traces[0]!.spans.find((sp) => tagValue(sp, 'ml.run.id') === s.parent.id)!;
    expect(parentOf(root)).toBeUndefined();
    for (const trial of s.trials) {
      const span = traces[0]!.spans.find((sp) => tagValue(sp, 'ml.run.id') === trial.id)!;
      expect(parentOf(span)).toBe(root.spanID);
    }
  });

  it('the collector\'s Prometheus exporter shows the runs: ml_runs_total, ml_metric per (run, key), ml_run_duration_seconds', async () => {
    ready();
    const s = summary!;
    const text = await poll(
      'ml_runs_total for the example on the prometheus exporter',
      async () => {
        const body = await (await fetch(ce!.prometheusExporterUrl)).text();
        return body.includes(`ml_experiment_name="${EXPERIMENT}"`) && /^ml_runs_total\{/m.test(body) ? body : undefined;
      },
      15_000,
    );
    const series = (name: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && l.includes(`ml_experiment_name="${EXPERIMENT}"`))
        .map((l) => ({ labels: Object.fromEntries([...l.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!])), value: Number(l.split(' ').at(-1)) }));
    expect(series('ml_runs_total').map((x) => [x.labels.ml_run_status, x.value])).toEqual([['success', CANDIDATES + 1]]);
    expect(series('ml_run_duration_seconds_count').map((x) => x.value)).toEqual([CANDIDATES + 1]);
    const metric = series('ml_metric');
    expect(metric).toHaveLength(CANDIDATES * TRIAL_KEYS.length + 1);
    for (const trial of s.trials) {
      for (const key of TRIAL_KEYS) {
        const found = metric.find((x) => x.labels.ml_run_id === trial.id && x.labels.ml_metric_key === key);
        expect(found?.labels.ml_run_name).toBe(trial.name);
        expect(found!.value).toBeCloseTo(trial.final[key]!, 9);
      }
    }
    expect(series('ml_run_step').filter((x) => x.labels.ml_run_id !== s.parent.id).map((x) => x.value)).toEqual(Array(CANDIDATES).fill(EPOCHS - 1));
  });
});

describe('examples/python/runtel_otel.py: failures and special values', () => {
  it('a run whose block raises is failed (ERROR span with an exception event, exception.* on ml.run.end); NaN/±Infinity/huge values travel as strings', async () => {
    ready();
    const experiment = `${EXPERIMENT}-failed`;
    const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: ce!.otlpHttpUrl, OTEL_METRIC_EXPORT_INTERVAL: '60000' };
    for (const key of ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'RUNTEL_EXPERIMENT']) delete env[key];
    const ids = await runFailingPythonRuns(env, experiment, '{"nested": {"a": 1, "b": [1, "x"]}, "flag": True, "none": None}', [
      'child.log_metrics({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "huge": 1e300, "big": 2**70, "ok": 0.5}, step=3)',
    ]);

    const [parent, child] = await poll(
      'the failed runs at the sink',
      () => {
        const p = sink!.spans.find((s) => s.attributes['ml.run.id'] === ids.parent);
        const c = sink!.spans.find((s) => s.attributes['ml.run.id'] === ids.child);
        return Promise.resolve(p !== undefined && c !== undefined && recordsOf(ids.parent, 'ml.run.end').length > 0 ? ([p, c] as const) : undefined);
      },
      20_000,
    );
    expect(parent.resource['service.name']).toBe(experiment);
    expect(parent.attributes).toMatchObject({ 'ml.param.nested.a': '1', 'ml.param.nested.b': '[1,"x"]', 'ml.param.flag': 'true', 'ml.param.none': 'null' });
    for (const [span, id] of [
      [child, ids.child],
      [parent, ids.parent],
    ] as const) {
      expect(span.status).toEqual({ code: 2, message: 'ValueError: diverged' });
      expect(span.attributes['ml.run.status']).toBe('failed');
      const exception = span.events.find((e) => e.name === 'exception');
      expect(exception?.attributes).toMatchObject({ 'exception.type': 'ValueError', 'exception.message': 'diverged' });
      const end = recordsOf(id, 'ml.run.end')[0]!;
      expect(end.attributes).toMatchObject({ 'ml.run.status': 'failed', 'exception.type': 'ValueError', 'exception.message': 'diverged' });
      expect(end.attributes['exception.stacktrace']).toMatch(/^Traceback[^]*ValueError: diverged\n$/);
    }
    const values = Object.fromEntries(recordsOf(ids.child, 'ml.metric').map((r) => [r.attributes['ml.metric.key'], r.attributes['ml.metric.value']]));
    expect(values).toEqual({ nan: 'NaN', inf: 'Infinity', ninf: '-Infinity', huge: '1e+300', big: '1.1805916207174113e+21', ok: 0.5 });
    expect(child.attributes['ml.metric.nan']).toBe('NaN');
    expect(child.attributes['ml.metric.ok']).toBe(0.5);
  });
});
