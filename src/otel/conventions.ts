// runtel's OpenTelemetry semantic conventions: every span, log record, attribute and instrument name
// the OTel backend writes. docs/semantic-conventions.md is the contract; keep the two in step.

/** Instrumentation scope of runtel's tracer, meter and logger. */
export const RUNTEL_SCOPE = 'runtel';

// ---- Identity (spans and every log record) ----
/** The run id: 32 lowercase hex characters. On the span and on every log record. */
export const ATTR_RUN_ID = 'ml.run.id';
/** The run's display name (also the span name). */
export const ATTR_RUN_NAME = 'ml.run.name';
/** The experiment the run belongs to. */
export const ATTR_EXPERIMENT_NAME = 'ml.experiment.name';
/** The parent run's id, for nested runs. */
export const ATTR_RUN_PARENT_ID = 'ml.run.parent_id';
/** `true` when this span/record continues an earlier run (`startRun({ runId })`). */
export const ATTR_RUN_RESUMED = 'ml.run.resumed';
/** Final status: `success`, `failed`, `killed` or `crashed` (the process died without finishing the run; written by whoever noticed). */
export const ATTR_RUN_STATUS = 'ml.run.status';

// ---- Params, tags, metric summaries ----
/** Prefix of one attribute per param: `ml.param.<flattened key>` (string values). */
export const PARAM_PREFIX = 'ml.param.';
/** Prefix of one attribute per tag: `ml.tag.<key>` (string values). */
export const TAG_PREFIX = 'ml.tag.';
/** Prefix of the span's per-metric latest values: `ml.metric.<key>`. */
export const METRIC_PREFIX = 'ml.metric.';
/** On the span: params that did not fit in the span's attribute limit (they are all in the log records). */
export const ATTR_RUN_DROPPED_PARAMS = 'ml.run.dropped_params_count';
/** On the span: tags that did not fit in the span's attribute limit. */
export const ATTR_RUN_DROPPED_TAGS = 'ml.run.dropped_tags_count';
/** On the span: metric summaries (`ml.metric.<key>`) that did not fit in the span's attribute limit. */
export const ATTR_RUN_DROPPED_METRICS = 'ml.run.dropped_metrics_count';
/**
 * On ml.run.end and the run span: the `ml.metric` and `ml.system` records the run emitted before its
 * end. A bridge that has received them all forwards the end at once instead of waiting for late ones.
 */
export const ATTR_RUN_METRIC_RECORDS_COUNT = 'ml.run.metric_records_count';

// ---- Metric point log records ----
export const ATTR_METRIC_KEY = 'ml.metric.key';
/**
 * The value: a number when OTLP/JSON can carry it (finite and |v| < 2^63), else its JavaScript
 * string form (`"NaN"`, `"Infinity"`, `"-Infinity"`, `"1e+300"`). Decode with {@link fromMetricAttributeValue}.
 */
export const ATTR_METRIC_VALUE = 'ml.metric.value';
export const ATTR_METRIC_STEP = 'ml.metric.step';

// ---- Artifacts ----
/** Absolute source path on the machine that logged it. */
export const ATTR_ARTIFACT_PATH = 'ml.artifact.path';
/** Destination inside the run's artifacts (`/`-separated); models are `models/<name>`. */
export const ATTR_ARTIFACT_NAME = 'ml.artifact.name';
/** `file` or `directory`. */
export const ATTR_ARTIFACT_KIND = 'ml.artifact.kind';
/** Total size in bytes when logged. */
export const ATTR_ARTIFACT_SIZE = 'ml.artifact.size';
/** SHA-256 (hex) of the file, or of a directory's sorted `name\0sha256\n` lines. */
export const ATTR_ARTIFACT_SHA256 = 'ml.artifact.sha256';
/** Set instead of `ml.artifact.sha256` when the artifact could not be hashed. */
export const ATTR_ARTIFACT_ERROR = 'ml.artifact.error';

// ---- Exceptions (OpenTelemetry semantic conventions) ----
export const ATTR_EXCEPTION_TYPE = 'exception.type';
export const ATTR_EXCEPTION_MESSAGE = 'exception.message';
export const ATTR_EXCEPTION_STACKTRACE = 'exception.stacktrace';
/** Only with `eventNameAttribute: true`: the event name also as an attribute, for pipelines older than the LogRecord `event_name` field. */
export const ATTR_EVENT_NAME = 'event.name';

// ---- Log record event names (LogRecord.eventName) ----
export const EVENT_RUN_START = 'ml.run.start';
export const EVENT_PARAMS = 'ml.params';
export const EVENT_TAGS = 'ml.tags';
export const EVENT_METRIC = 'ml.metric';
export const EVENT_ARTIFACT = 'ml.artifact';
export const EVENT_RUN_END = 'ml.run.end';
/**
 * One system-metrics sample of a top-level run (docs/system-metrics.md): `ml.run.id`, `ml.system.step`
 * and one attribute per value, `ml.system.<MLflow name>` (e.g. `ml.system.cpu_utilization_percentage`).
 */
export const EVENT_SYSTEM = 'ml.system';
/** Prefix of a system sample's values on its `ml.system` record. */
export const SYSTEM_ATTR_PREFIX = 'ml.system.';
/** The sample's index in its run (MLflow's system step), on the `ml.system` record. */
export const ATTR_SYSTEM_STEP = 'ml.system.step';
/** A running run that emitted nothing else for a heartbeat interval shows it is alive (attributes: `ml.run.id`). */
export const EVENT_RUN_HEARTBEAT = 'ml.run.heartbeat';

// ---- Instruments ----
/** Gauge: each (run, key)'s latest value. Attributes: ml.metric.key, ml.run.id, ml.run.name, ml.experiment.name. */
export const METRIC_GAUGE = 'ml.metric';
/** Gauge: each run's largest step. Attributes: ml.run.id, ml.run.name, ml.experiment.name. */
export const METRIC_RUN_STEP = 'ml.run.step';
/** Counter: finished runs. Attributes: ml.run.status, ml.experiment.name. */
export const METRIC_RUNS = 'ml.runs';
/** Histogram (s): run duration. Attributes: ml.run.status, ml.experiment.name. */
export const METRIC_RUN_DURATION = 'ml.run.duration';
/** Counter: metric points not mirrored on the `ml.metric` gauge because of the cardinality bound. Attribute: `reason` (`runs` | `keys`). */
export const METRIC_GAUGE_OVERFLOW = 'ml.metric.overflow';

const INT64_BOUND = 2 ** 63;

/**
 * The attribute value runtel writes for a metric value: the number itself when every OTLP encoding
 * carries it exactly (finite, |v| < 2^63), else `String(value)`. The OTel JS JSON serializer writes
 * NaN and ±Infinity as `null` (rejected by the Collector's JSON reader) and integers ≥ 2^63 as
 * out-of-range `intValue`s, so those travel as strings in every encoding.
 */
export function toMetricAttributeValue(value: number): number | string {
  return value < INT64_BOUND && value > -INT64_BOUND ? value : String(value);
}

/**
 * Reads `ml.metric.value` (or a span's `ml.metric.<key>`) back into a number, whatever the wire
 * form: a number, an int64 decoded as a decimal string or a Long-like object, or the string form
 * of NaN, ±Infinity or a huge value.
 */
export function fromMetricAttributeValue(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'bigint') return Number(raw);
  if (typeof raw === 'string') {
    const value = Number(raw);
    if (!Number.isNaN(value) || raw === 'NaN') return value;
  } else if (typeof raw === 'object' && raw !== null && typeof (raw as { toNumber?: unknown }).toNumber === 'function') {
    return (raw as { toNumber(): number }).toNumber();
  }
  throw new TypeError(`not a runtel metric value: ${JSON.stringify(raw) ?? String(raw)}`);
}
