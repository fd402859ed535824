// The OpenTelemetry backend: turns run events into spans, log records and instruments, following
// conventions.ts (documented in docs/semantic-conventions.md).
//
// Run -> span (root for top-level runs, child of the parent run's span when nested). Every metric
// point -> one `ml.metric` log record in the run span's context. Run lifecycle, params, tags and
// artifacts -> log records too, so a consumer can rebuild a run live. Gauges, a counter and a
// histogram for dashboards, with a bounded number of series.

import { ROOT_CONTEXT, SpanStatusCode, context, metrics, trace, ValueType } from '@opentelemetry/api';
import type {
  Attributes,
  Context,
  Counter,
  Histogram,
  MeterProvider,
  ObservableCallback,
  ObservableGauge,
  ObservableCounter,
  Span,
  Tracer,
  TracerProvider,
} from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import type { LogAttributes, Logger as OtelApiLogger, LoggerProvider } from '@opentelemetry/api-logs';
import type { RunBackend } from '../core/RunBackend.js';
import type {
  ArtifactEvent,
  MetricsEvent,
  ParamsEvent,
  RunEvent,
  RunFinishedEvent,
  RunStartedEvent,
  TagsEvent,
} from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import { getNumberFromEnv } from '../core/env.js';
import { sha256Of } from '../core/artifacts.js';
import {
  ATTR_ARTIFACT_ERROR,
  ATTR_ARTIFACT_KIND,
  ATTR_ARTIFACT_NAME,
  ATTR_ARTIFACT_PATH,
  ATTR_ARTIFACT_SHA256,
  ATTR_ARTIFACT_SIZE,
  ATTR_EVENT_NAME,
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_STACKTRACE,
  ATTR_EXCEPTION_TYPE,
  ATTR_EXPERIMENT_NAME,
  ATTR_METRIC_KEY,
  ATTR_RUN_DROPPED_METRICS,
  ATTR_RUN_DROPPED_PARAMS,
  ATTR_RUN_DROPPED_TAGS,
  ATTR_RUN_ID,
  ATTR_RUN_NAME,
  ATTR_RUN_PARENT_ID,
  ATTR_RUN_RESUMED,
  ATTR_RUN_STATUS,
  EVENT_ARTIFACT,
  EVENT_METRIC,
  EVENT_PARAMS,
  EVENT_RUN_END,
  EVENT_RUN_START,
  EVENT_TAGS,
  METRIC_GAUGE,
  METRIC_GAUGE_OVERFLOW,
  METRIC_PREFIX,
  METRIC_RUNS,
  METRIC_RUN_DURATION,
  METRIC_RUN_STEP,
  PARAM_PREFIX,
  RUNTEL_SCOPE,
  TAG_PREFIX,
  encodeMetricValue,
} from './conventions.js';
import { countingProcessorsCreated, processDeliveryStats } from './CountingBatchLogRecordProcessor.js';
import type { CountingBatchLogRecordProcessor, DeliveryStats, DeliveryStatsSource } from './CountingBatchLogRecordProcessor.js';
import { flushableOf, globalOtelProviders } from './globals.js';

export interface OtelBackendOptions {
  /** Default: the global tracer provider (`trace.getTracerProvider()`), resolved at the first run. */
  tracerProvider?: TracerProvider;
  /** Default: the global meter provider, resolved at the first run. */
  meterProvider?: MeterProvider;
  /** Default: the global logger provider (`logs.getLoggerProvider()`), resolved at the first run. */
  loggerProvider?: LoggerProvider;
  /**
   * The span attribute count limit the tracer provider applies, so runtel decides what to keep.
   * Default: env `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, else `OTEL_ATTRIBUTE_COUNT_LIMIT`, else 128 (the SDK's rules).
   */
  spanAttributeCountLimit?: number;
  /**
   * The log record attribute count limit of the logger provider; params and tags are split over
   * several records to fit. Default: env `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, else
   * `OTEL_ATTRIBUTE_COUNT_LIMIT`, else 128.
   */
  logRecordAttributeCountLimit?: number;
  /** Runs per process whose metrics the `ml.metric` and `ml.run.step` gauges carry. Default: 64. */
  maxGaugeRuns?: number;
  /** Metric keys per run the `ml.metric` gauge carries (the first ones logged). Default: 30. */
  maxGaugeKeysPerRun?: number;
  /** Also write the event name as an `event.name` attribute (for pipelines older than OTLP's `event_name` field). Default: false. */
  eventNameAttribute?: boolean;
  /** Where undelivered log records are counted. Default: every CountingBatchLogRecordProcessor in the process. */
  delivery?: DeliveryStatsSource;
  /**
   * The logger provider's only processor (as `startOtel` sets it up). When it has no room, metric
   * points are counted as dropped without building a record the processor would refuse, which keeps
   * CPU and memory flat while the backend is unreachable. Leave unset when the provider has other processors.
   */
  exclusiveProcessor?: CountingBatchLogRecordProcessor;
  /**
   * Called at a run's finish (and at shutdown) when more records went undelivered since the last
   * call. Default: one warning line on stderr.
   */
  onUndelivered?: (undelivered: number, stats: DeliveryStats) => void;
  /** Providers runtel started itself (`startOtel`): shut down with the backend. */
  ownedSdk?: { shutdown(): Promise<void> };
}

/** The latest point of one metric key of one run (MLflow's "latest": largest step, then timestamp). */
interface Latest {
  step: number;
  timestamp: number;
  value: number;
  /** The `ml.metric` gauge's attributes for this series, or undefined when over the cardinality bound. */
  gaugeAttrs: Attributes | undefined;
}

/** A run's metric state, kept past the run's end when the gauges carry it. */
interface RunMetrics {
  latest: Map<string, Latest>;
  maxStep: number;
  /** Attributes of the run's `ml.run.step` series; undefined when the run is not on the gauges. */
  stepAttrs: Attributes | undefined;
  gaugeKeys: number;
}

interface RunState {
  id: string;
  name: string;
  experiment: string;
  span: Span;
  /** ROOT_CONTEXT (or the parent run's context) with this run's span: log records are emitted in it. */
  ctx: Context;
  startTime: number;
  metrics: RunMetrics;
  /** Params and tags on the span so far, against their share of the attribute limit. */
  spanSlotsUsed: number;
  spanTagKeys: Set<string>;
  droppedParams: number;
  droppedTagKeys: Set<string>;
  pendingArtifacts: Set<Promise<void>>;
}

const RESERVED_SPAN_ATTRIBUTES = 9; // identity (5), status, three dropped counts
const DURATION_BUCKETS_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 86_400];

let warnedNoCountingProcessor = false;

function countLimit(option: number | undefined, envName: string): number {
  const value = option ?? getNumberFromEnv(envName) ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT') ?? 128;
  if (!(value >= 1)) throw new RangeError(`attribute count limit must be at least 1, got ${value}`);
  return Math.floor(value);
}

export class OtelBackend implements RunBackend {
  readonly name = 'otel';
  /** The owning logger's failure reporter: asynchronous failures (artifact hashing, setup) go there. */
  private _report: ((failure: BackendFailure) => void) | undefined;

  private readonly _options: OtelBackendOptions;
  private readonly _spanLimit: number;
  private readonly _recordLimit: number;
  private readonly _maxGaugeRuns: number;
  private readonly _maxGaugeKeys: number;
  private readonly _eventNameAttribute: boolean;
  private readonly _delivery: DeliveryStatsSource;
  private readonly _undeliveredBaseline: number;
  private _undeliveredReported = 0;

  private readonly _runs = new Map<string, RunState>();
  private readonly _pending = new Set<Promise<void>>();
  private readonly _gaugeRuns: RunMetrics[] = [];
  private readonly _overflow = { runs: 0, keys: 0 };

  private _tracer: Tracer | undefined;
  private _logger: OtelApiLogger | undefined;
  private _runsCounter: Counter | undefined;
  private _durationHistogram: Histogram | undefined;
  private _observables: Array<[ObservableGauge | ObservableCounter, ObservableCallback]> = [];

  constructor(options: OtelBackendOptions = {}) {
    this._options = options;
    this._spanLimit = countLimit(options.spanAttributeCountLimit, 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT');
    this._recordLimit = countLimit(options.logRecordAttributeCountLimit, 'OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT');
    this._maxGaugeRuns = Math.max(0, Math.floor(options.maxGaugeRuns ?? 64));
    this._maxGaugeKeys = Math.max(0, Math.floor(options.maxGaugeKeysPerRun ?? 30));
    this._eventNameAttribute = options.eventNameAttribute ?? false;
    this._delivery = options.delivery ?? { deliveryStats: processDeliveryStats };
    this._undeliveredBaseline = this._delivery.deliveryStats().undelivered;
  }

  onEvent(event: RunEvent): void {
    switch (event.type) {
      case 'metrics':
        return this._onMetrics(event);
      case 'run_started':
        return this._onStarted(event);
      case 'params':
        return this._onParams(event);
      case 'tags':
        return this._onTags(event);
      case 'artifact':
        return this._onArtifact(event);
      case 'run_finished':
        return this._onFinished(event);
    }
  }

  runInContext<T>(runId: string, fn: () => T): T {
    const run = this._runs.get(runId);
    return run === undefined ? fn() : context.with(trace.setSpan(context.active(), run.span), fn);
  }

  /** Waits for pending artifact hashes and deferred run ends, then flushes the tracer, meter and logger providers. */
  async forceFlush(): Promise<void> {
    await this._settlePending();
    const providers = [
      this._options.tracerProvider ?? trace.getTracerProvider(),
      this._options.meterProvider ?? metrics.getMeterProvider(),
      this._options.loggerProvider ?? logs.getLoggerProvider(),
    ];
    await Promise.all(providers.map((p) => flushableOf(p)?.forceFlush() ?? Promise.resolve()));
    this._reportUndelivered();
  }

  /** Flushes; shuts down the providers runtel started (their shutdown flushes, and gives up at the first failed export). */
  async shutdown(): Promise<void> {
    try {
      if (this._options.ownedSdk === undefined) {
        await this.forceFlush();
      } else {
        await this._settlePending();
        await this._options.ownedSdk.shutdown();
      }
    } finally {
      for (const [instrument, callback] of this._observables) instrument.removeCallback(callback);
      this._observables = [];
      this._reportUndelivered();
    }
  }

  /** Log records undelivered since this backend was created (see `DeliveryStats`). */
  undeliveredCount(): number {
    return this._delivery.deliveryStats().undelivered - this._undeliveredBaseline;
  }

  /** The delivery counts of the processor(s) this backend reports on. */
  deliveryStats(): DeliveryStats {
    return this._delivery.deliveryStats();
  }

  /** Metric points not mirrored on the `ml.metric` gauge because of the cardinality bound. */
  gaugeOverflow(): { runs: number; keys: number } {
    return { ...this._overflow };
  }

  // ---- events ----

  private _onMetrics(event: MetricsEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    const logger = this._logger!;
    const gate = this._options.exclusiveProcessor;
    const { step, timestamp, values } = event;
    const ctx = run.ctx;
    const runId = run.id;
    const latestByKey = run.metrics.latest;
    for (const key in values) {
      const value = values[key]!;
      if (gate === undefined || gate.hasRoom()) {
        // Literal keys keep this object literal fast; they are ATTR_METRIC_KEY, ATTR_METRIC_VALUE, ATTR_METRIC_STEP, ATTR_RUN_ID.
        const attributes: LogAttributes = {
          'ml.metric.key': key,
          'ml.metric.value': value < 9223372036854775808 && value > -9223372036854775808 ? value : String(value),
          'ml.metric.step': step,
          'ml.run.id': runId,
        };
        if (this._eventNameAttribute) attributes[ATTR_EVENT_NAME] = EVENT_METRIC;
        logger.emit({ eventName: EVENT_METRIC, timestamp, context: ctx, attributes });
      } else {
        gate.countRefused(1);
      }
      const latest = latestByKey.get(key);
      if (latest === undefined) {
        latestByKey.set(key, this._newSeries(run, key, step, timestamp, value));
      } else {
        if (step > latest.step || (step === latest.step && timestamp >= latest.timestamp)) {
          latest.step = step;
          latest.timestamp = timestamp;
          latest.value = value;
        }
        if (latest.gaugeAttrs === undefined) this._overflow[run.metrics.stepAttrs === undefined ? 'runs' : 'keys']++;
      }
    }
    if (step > run.metrics.maxStep) run.metrics.maxStep = step;
  }

  private _newSeries(run: RunState, key: string, step: number, timestamp: number, value: number): Latest {
    const m = run.metrics;
    if (m.latest.size === 0 && m.stepAttrs === undefined && this._gaugeRuns.length < this._maxGaugeRuns) {
      m.stepAttrs = { [ATTR_RUN_ID]: run.id, [ATTR_RUN_NAME]: run.name, [ATTR_EXPERIMENT_NAME]: run.experiment };
      this._gaugeRuns.push(m);
    }
    let gaugeAttrs: Attributes | undefined;
    if (m.stepAttrs !== undefined && m.gaugeKeys < this._maxGaugeKeys) {
      gaugeAttrs = { [ATTR_METRIC_KEY]: key, ...m.stepAttrs };
      m.gaugeKeys++;
    } else {
      this._overflow[m.stepAttrs === undefined ? 'runs' : 'keys']++;
    }
    return { step, timestamp, value, gaugeAttrs };
  }

  private _onStarted(event: RunStartedEvent): void {
    this._ensureInstruments();
    const parent = event.parentId === undefined ? undefined : this._runs.get(event.parentId);
    // A top-level run starts a new trace whatever span is active in the caller's context.
    const parentCtx = parent === undefined ? ROOT_CONTEXT : parent.ctx;
    const identity: Attributes = {
      [ATTR_RUN_ID]: event.runId,
      [ATTR_RUN_NAME]: event.name,
      [ATTR_EXPERIMENT_NAME]: event.experiment,
    };
    if (event.parentId !== undefined) identity[ATTR_RUN_PARENT_ID] = event.parentId;
    if (event.resumed === true) identity[ATTR_RUN_RESUMED] = true;

    const span = this._tracer!.startSpan(event.name, { startTime: event.startTime, attributes: identity }, parentCtx);
    const run: RunState = {
      id: event.runId,
      name: event.name,
      experiment: event.experiment,
      span,
      ctx: trace.setSpan(parentCtx, span),
      startTime: event.startTime,
      metrics: { latest: new Map(), maxStep: -1, stepAttrs: undefined, gaugeKeys: 0 },
      spanSlotsUsed: 0,
      spanTagKeys: new Set(),
      droppedParams: 0,
      droppedTagKeys: new Set(),
      pendingArtifacts: new Set(),
    };
    this._runs.set(run.id, run);
    this._spanParams(run, event.params);
    this._spanTags(run, event.tags);

    // ml.run.start: identity, then params and tags while they fit; the rest in ml.params / ml.tags records.
    const attributes: LogAttributes = { ...identity };
    let room = this._recordLimit - Object.keys(attributes).length - (this._eventNameAttribute ? 1 : 0);
    const params = Object.entries(event.params);
    const tags = Object.entries(event.tags);
    let p = 0;
    let t = 0;
    for (; p < params.length && room > 0; p++, room--) attributes[PARAM_PREFIX + params[p]![0]] = params[p]![1];
    for (; t < tags.length && room > 0; t++, room--) attributes[TAG_PREFIX + tags[t]![0]] = tags[t]![1];
    this._emit(run, EVENT_RUN_START, event.startTime, attributes);
    this._emitChunked(run, EVENT_PARAMS, PARAM_PREFIX, params.slice(p), event.startTime);
    this._emitChunked(run, EVENT_TAGS, TAG_PREFIX, tags.slice(t), event.startTime);
  }

  private _onParams(event: ParamsEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    this._spanParams(run, event.params);
    this._emitChunked(run, EVENT_PARAMS, PARAM_PREFIX, Object.entries(event.params), event.time);
  }

  private _onTags(event: TagsEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    this._spanTags(run, event.tags);
    this._emitChunked(run, EVENT_TAGS, TAG_PREFIX, Object.entries(event.tags), event.time);
  }

  private _onArtifact(event: ArtifactEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    // Hashing reads the file: emit when the hash is ready; forceFlush and the run's end wait for it.
    const work = sha256Of(event.path).then(
      (sha256) => this._emitArtifact(run, event, { [ATTR_ARTIFACT_SHA256]: sha256 }),
      (error: unknown) => {
        this._report?.({ backend: this.name, operation: 'artifact', error });
        this._emitArtifact(run, event, { [ATTR_ARTIFACT_ERROR]: error instanceof Error ? error.message : String(error) });
      },
    );
    this._track(work, run.pendingArtifacts);
  }

  private _emitArtifact(run: RunState, event: ArtifactEvent, hash: Attributes): void {
    const attributes: Attributes = {
      [ATTR_ARTIFACT_PATH]: event.path,
      [ATTR_ARTIFACT_NAME]: event.name,
      [ATTR_ARTIFACT_KIND]: event.kind,
      [ATTR_ARTIFACT_SIZE]: event.size,
      ...hash,
    };
    run.span.addEvent(EVENT_ARTIFACT, attributes, event.time);
    this._emit(run, EVENT_ARTIFACT, event.time, { [ATTR_RUN_ID]: run.id, ...(attributes as LogAttributes) });
  }

  private _onFinished(event: RunFinishedEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    this._runs.delete(run.id);
    if (run.pendingArtifacts.size === 0) {
      this._end(run, event);
      return;
    }
    // Artifact records first, then the end: the span must still be open for their events.
    const work = Promise.allSettled([...run.pendingArtifacts]).then(() => this._end(run, event));
    this._track(work);
  }

  private _end(run: RunState, event: RunFinishedEvent): void {
    const span = run.span;
    const attributes: Attributes = { [ATTR_RUN_STATUS]: event.status };
    // Metric summaries get the span attribute room params and tags left.
    let room = Math.max(0, this._spanLimit - RESERVED_SPAN_ATTRIBUTES) - run.spanSlotsUsed;
    let droppedMetrics = 0;
    for (const [key, latest] of run.metrics.latest) {
      if (room > 0) {
        attributes[METRIC_PREFIX + key] = encodeMetricValue(latest.value);
        room--;
      } else {
        droppedMetrics++;
      }
    }
    if (run.droppedParams > 0) attributes[ATTR_RUN_DROPPED_PARAMS] = run.droppedParams;
    if (run.droppedTagKeys.size > 0) attributes[ATTR_RUN_DROPPED_TAGS] = run.droppedTagKeys.size;
    if (droppedMetrics > 0) attributes[ATTR_RUN_DROPPED_METRICS] = droppedMetrics;
    span.setAttributes(attributes);

    const error = event.error;
    if (error !== undefined) {
      const exception = error.stack === undefined ? { name: error.type, message: error.message } : { name: error.type, message: error.message, stack: error.stack };
      span.recordException(exception, event.endTime);
    }
    if (event.status === 'success') span.setStatus({ code: SpanStatusCode.OK });
    else if (event.status === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: error === undefined ? 'failed' : `${error.type}: ${error.message}` });
    else span.setStatus({ code: SpanStatusCode.ERROR, message: 'killed' });

    const record: LogAttributes = { [ATTR_RUN_ID]: run.id, [ATTR_RUN_STATUS]: event.status };
    if (error !== undefined) {
      record[ATTR_EXCEPTION_TYPE] = error.type;
      record[ATTR_EXCEPTION_MESSAGE] = error.message;
      if (error.stack !== undefined) record[ATTR_EXCEPTION_STACKTRACE] = error.stack;
    }
    this._emit(run, EVENT_RUN_END, event.endTime, record);
    span.end(event.endTime);

    // A run stays on the gauges after its end: keep only the series they read.
    if (run.metrics.stepAttrs !== undefined) {
      for (const [key, latest] of run.metrics.latest) if (latest.gaugeAttrs === undefined) run.metrics.latest.delete(key);
    }

    const byStatus: Attributes = { [ATTR_RUN_STATUS]: event.status, [ATTR_EXPERIMENT_NAME]: run.experiment };
    this._runsCounter!.add(1, byStatus);
    this._durationHistogram!.record(Math.max(0, event.endTime - run.startTime) / 1000, byStatus);
  }

  // ---- span attribute budget ----

  /** Params and tags share three quarters of the span's free attribute room; metric summaries get the rest. */
  private _paramTagRoom(): number {
    return Math.floor((Math.max(0, this._spanLimit - RESERVED_SPAN_ATTRIBUTES) * 3) / 4);
  }

  private _spanParams(run: RunState, params: Record<string, string>): void {
    const cap = this._paramTagRoom();
    const kept: Attributes = {};
    for (const key in params) {
      if (run.spanSlotsUsed < cap) {
        kept[PARAM_PREFIX + key] = params[key]!;
        run.spanSlotsUsed++;
      } else {
        run.droppedParams++;
      }
    }
    run.span.setAttributes(kept);
  }

  private _spanTags(run: RunState, tags: Record<string, string>): void {
    const cap = this._paramTagRoom();
    const kept: Attributes = {};
    for (const key in tags) {
      if (run.spanTagKeys.has(key)) {
        kept[TAG_PREFIX + key] = tags[key]!;
      } else if (run.spanSlotsUsed < cap && !run.droppedTagKeys.has(key)) {
        kept[TAG_PREFIX + key] = tags[key]!;
        run.spanTagKeys.add(key);
        run.spanSlotsUsed++;
      } else {
        run.droppedTagKeys.add(key);
      }
    }
    run.span.setAttributes(kept);
  }

  // ---- log records ----

  private _emit(run: RunState, eventName: string, time: number, attributes: LogAttributes): void {
    if (this._eventNameAttribute) attributes[ATTR_EVENT_NAME] = eventName;
    this._logger!.emit({ eventName, timestamp: time, context: run.ctx, attributes });
  }

  /** Params or tags as `prefix<key>` attributes over as many records as the attribute limit needs. */
  private _emitChunked(run: RunState, eventName: string, prefix: string, entries: Array<[string, string]>, time: number): void {
    const perRecord = Math.max(1, this._recordLimit - 1 - (this._eventNameAttribute ? 1 : 0));
    for (let i = 0; i < entries.length; i += perRecord) {
      const attributes: LogAttributes = { [ATTR_RUN_ID]: run.id };
      for (const [key, value] of entries.slice(i, i + perRecord)) attributes[prefix + key] = value;
      this._emit(run, eventName, time, attributes);
    }
  }

  // ---- setup and bookkeeping ----

  private _ensureInstruments(): void {
    if (this._tracer !== undefined) return;
    const options = this._options;
    this._tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(RUNTEL_SCOPE);
    this._logger = (options.loggerProvider ?? logs.getLoggerProvider()).getLogger(RUNTEL_SCOPE);
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(RUNTEL_SCOPE);
    this._warnAboutSetup();

    this._runsCounter = meter.createCounter(METRIC_RUNS, { description: 'Finished runs by final status', unit: '{run}' });
    this._durationHistogram = meter.createHistogram(METRIC_RUN_DURATION, {
      description: 'Run duration from start to finish',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    });
    const gauge = meter.createObservableGauge(METRIC_GAUGE, {
      description: "Each run's latest value of each metric key (largest step, then latest timestamp)",
      valueType: ValueType.DOUBLE,
    });
    const stepGauge = meter.createObservableGauge(METRIC_RUN_STEP, { description: "Each run's largest logged step", valueType: ValueType.INT });
    const overflow = meter.createObservableCounter(METRIC_GAUGE_OVERFLOW, {
      description: 'Metric points not mirrored on the ml.metric gauge because of its cardinality bound (all are in the ml.metric log records)',
      unit: '{point}',
      valueType: ValueType.INT,
    });
    const observeGauge: ObservableCallback = (result) => {
      for (const run of this._gaugeRuns) {
        for (const latest of run.latest.values()) {
          // OTLP/JSON cannot carry NaN or ±Infinity (see docs): the log records carry those points.
          if (latest.gaugeAttrs !== undefined && Number.isFinite(latest.value)) result.observe(latest.value, latest.gaugeAttrs);
        }
      }
    };
    const observeStep: ObservableCallback = (result) => {
      for (const run of this._gaugeRuns) if (run.maxStep >= 0) result.observe(run.maxStep, run.stepAttrs);
    };
    const observeOverflow: ObservableCallback = (result) => {
      if (this._overflow.runs > 0) result.observe(this._overflow.runs, { reason: 'runs' });
      if (this._overflow.keys > 0) result.observe(this._overflow.keys, { reason: 'keys' });
    };
    gauge.addCallback(observeGauge);
    stepGauge.addCallback(observeStep);
    overflow.addCallback(observeOverflow);
    this._observables = [
      [gauge, observeGauge],
      [stepGauge, observeStep],
      [overflow, observeOverflow],
    ];
  }

  private _warnAboutSetup(): void {
    const options = this._options;
    const usingGlobals = options.tracerProvider === undefined || options.meterProvider === undefined || options.loggerProvider === undefined;
    if (usingGlobals) {
      const registered = globalOtelProviders();
      const missing = [
        options.tracerProvider === undefined && !registered.traces ? 'TracerProvider (runs as spans)' : undefined,
        options.meterProvider === undefined && !registered.metrics ? 'MeterProvider (dashboard gauges)' : undefined,
        options.loggerProvider === undefined && !registered.logs ? 'LoggerProvider (metric points and run records)' : undefined,
      ].filter((s) => s !== undefined);
      if (missing.length > 0) {
        this._warn('setup', `no global OpenTelemetry ${missing.join(', ')} is registered, so that data goes nowhere: start your NodeSDK (or call startOtel()) before the first run`);
      }
    }
    if (options.delivery === undefined && countingProcessorsCreated() === 0 && !warnedNoCountingProcessor) {
      warnedNoCountingProcessor = true;
      this._warn(
        'delivery',
        "no CountingBatchLogRecordProcessor exists, so runtel cannot count undelivered metric points (the SDK's BatchLogRecordProcessor drops records past its 2048-record queue silently): " +
          'pass new CountingBatchLogRecordProcessor({ exporter }) in NodeSDK logRecordProcessors, or use startOtel()',
      );
    }
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._report = report;
  }

  private _warn(operation: string, message: string): void {
    const error = new Error(message);
    if (this._report !== undefined) this._report({ backend: this.name, operation, error });
    else process.stderr.write(`runtel: otel: ${message}\n`);
  }

  private _reportUndelivered(): void {
    const stats = this._delivery.deliveryStats();
    const undelivered = stats.undelivered - this._undeliveredBaseline;
    if (undelivered <= this._undeliveredReported) return;
    this._undeliveredReported = undelivered;
    if (this._options.onUndelivered !== undefined) {
      try {
        this._options.onUndelivered(undelivered, stats);
      } catch {
        // A throwing handler must not reach training code.
      }
      return;
    }
    process.stderr.write(
      `runtel: otel: ${undelivered} log record(s) (metric points and run records) could not be delivered so far ` +
        `(queue full: ${stats.dropped}, export failed: ${stats.failed}, abandoned at shutdown: ${stats.abandoned}` +
        `${stats.lastError === undefined ? '' : `; last error: ${stats.lastError}`}); OtelLogger.deliveryStats() has the counts\n`,
    );
  }

  /** Waits for artifact hashes and deferred run ends (new ones may appear while waiting). */
  private async _settlePending(): Promise<void> {
    while (this._pending.size > 0) await Promise.allSettled([...this._pending]);
  }

  private _track(work: Promise<void>, also?: Set<Promise<void>>): void {
    const tracked = work.catch((error: unknown) => this._report?.({ backend: this.name, operation: 'onEvent', error }));
    this._pending.add(tracked);
    also?.add(tracked);
    void tracked.finally(() => {
      this._pending.delete(tracked);
      also?.delete(tracked);
    });
  }
}
