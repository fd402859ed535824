"""runtel's OpenTelemetry conventions for Python: ML runs as spans and log records.

A small, dependency-light helper that writes what runtel's TypeScript ``OtelLogger`` writes (see
docs/semantic-conventions.md in the runtel repository), so a Python training script can send its
runs through an OpenTelemetry Collector to the runtel bridge (and on to MLflow), to Jaeger and to
Prometheus. Copy this file into your project; it needs only::

    opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http

What it writes, per run:

* one span (kind INTERNAL, scope ``runtel``): a top-level run is the root of a new trace, a nested
  run a child of its parent's span. Attributes ``ml.run.id`` (32 hex), ``ml.run.name``,
  ``ml.experiment.name``, ``ml.run.parent_id``, ``ml.param.*``, ``ml.tag.*``; at the end
  ``ml.run.status`` and ``ml.metric.<key>`` (the latest value: largest step, then latest time).
  Status OK for ``success``, ERROR for ``failed`` / ``killed`` (with an ``exception`` event);
* log records in the run span's context, their type in the record's ``event_name`` field:
  ``ml.run.start`` (identity, params, tags), ``ml.params`` / ``ml.tags`` (later or overflowing
  params and tags), ``ml.metric`` (one record per point: ``ml.metric.key``, ``ml.metric.value``,
  ``ml.metric.step``, at the point's time), ``ml.run.end`` (``ml.run.status``, ``exception.*``,
  ``ml.run.metric_records_count``),
  ``ml.run.heartbeat`` (``ml.run.id``) when a running run emitted nothing else for
  ``RUNTEL_HEARTBEAT_INTERVAL_MILLIS`` (default 30000), so the bridge can tell a quiet run from one
  whose process died (it finishes those ``crashed``);
* metrics for dashboards: gauges ``ml.metric`` (latest value per run and key) and ``ml.run.step``,
  counter ``ml.runs`` and histogram ``ml.run.duration`` (seconds), by status.

Configuration is OpenTelemetry's standard environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (e.g.
``http://localhost:4318``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_METRIC_EXPORT_INTERVAL``, and ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``http/protobuf``, the default here, or ``grpc``, e.g. to ``http://localhost:4317``; the gRPC exporter
needs ``opentelemetry-exporter-otlp-proto-grpc``). Without ``OTEL_SERVICE_NAME`` the
service name is ``RUNTEL_EXPERIMENT``, else the experiment given to :class:`RuntelOtel`, so that
Jaeger's "service" is the experiment.

Usage::

    otel = RuntelOtel(experiment="iris")
    with otel.start_run("search", params={"grid": "lr x alpha"}) as parent:
        for lr in (0.01, 0.1):
            with otel.start_run(f"lr={lr}", parent=parent, params={"lr": lr}) as trial:
                for epoch in range(10):
                    trial.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
    otel.shutdown()

A ``with`` block finishes the run ``success``, or ``failed`` if the block raises (the exception
propagates), or ``killed`` on ``KeyboardInterrupt``.

Runs across processes follow runtel's environment contract (docs/semantic-conventions.md, "Runs
across processes"): a run started with no ``parent`` in a process whose environment has
``RUNTEL_PARENT_RUN_ID`` (as a TypeScript run's ``childEnv()`` or :meth:`Run.child_env` writes it) is
that run's child, its span a child of the ``TRACEPARENT`` span, in ``RUNTEL_EXPERIMENT`` unless an
experiment is given; ``parent=TOP_LEVEL`` opts out. ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun)
or ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` become tags ``runtel.rank``,
``runtel.world_size``, ``runtel.local_rank``, ``runtel.host`` and the default name says the rank::

    otel = RuntelOtel()  # experiment: RUNTEL_EXPERIMENT, else "default"
    with otel.start_run() as run:  # e.g. "sweep-rank3", a child of the launching run
        ...
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SCOPE_NAME = "runtel"
SCOPE_VERSION = "0.1.0-python"

STATUSES = ("success", "failed", "killed", "crashed")
DEFAULT_HEARTBEAT_INTERVAL_MS = 30000
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)
INT64_LIMIT = 2**63

# Which Python logs API the installed SDK has. opentelemetry-api 1.35+ gives LogRecord an
# `event_name` (OTLP LogRecord.event_name, field 12) and 1.39+ a `context` (from which the SDK
# takes trace and span ids). Older versions: ids set explicitly, and the type goes into the
# `event.name` attribute, which runtel's consumers accept too.
_LOG_RECORD_PARAMS = set(inspect.signature(ApiLogRecord.__init__).parameters)
HAS_EVENT_NAME = "event_name" in _LOG_RECORD_PARAMS
_HAS_CONTEXT = "context" in _LOG_RECORD_PARAMS


def _heartbeat_interval(option: Optional[float]) -> float:
    """The option, else ``RUNTEL_HEARTBEAT_INTERVAL_MILLIS``, else 30000; anything but a number above 0 is an error naming it."""
    name, raw = ("heartbeat_interval_ms", option) if option is not None else ("RUNTEL_HEARTBEAT_INTERVAL_MILLIS", (os.environ.get("RUNTEL_HEARTBEAT_INTERVAL_MILLIS") or "").strip() or None)
    if raw is None:
        return DEFAULT_HEARTBEAT_INTERVAL_MS
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0:
        raise ValueError(f"{name} must be a number of milliseconds greater than 0, got {raw!r}")
    return value


# A run that must be top-level whatever the environment says: ``start_run(..., parent=TOP_LEVEL)``.
TOP_LEVEL: Any = object()
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_warned: set[str] = set()


def _env(name: str) -> Optional[str]:
    """An environment variable; empty means unset, as in runtel's TypeScript side."""
    value = (os.environ.get(name) or "").strip()
    return value or None


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"runtel: {message}", file=sys.stderr, flush=True)


def inherited_parent() -> Optional[dict[str, Any]]:
    """The parent run this process's environment names: id, name and the TRACEPARENT span's context,
    or None. A malformed id warns once and the run is top-level; a malformed TRACEPARENT warns once and
    the run nests by id only (its span starts a new trace)."""
    raw = _env("RUNTEL_PARENT_RUN_ID")
    if raw is None:
        return None
    run_id = raw.lower()
    if not _RUN_ID.match(run_id):
        _warn_once(f"ignoring RUNTEL_PARENT_RUN_ID={json.dumps(raw)}: a run id is 32 hex characters; the run is top-level")
        return None
    ctx = Context()
    traceparent = _env("TRACEPARENT")
    if traceparent is not None:
        carrier = {"traceparent": traceparent}
        tracestate = _env("TRACESTATE")
        if tracestate is not None:
            carrier["tracestate"] = tracestate
        extracted = _PROPAGATOR.extract(carrier, context=Context())
        if trace.get_current_span(extracted).get_span_context().is_valid:
            ctx = extracted
        else:
            _warn_once(f"ignoring TRACEPARENT={json.dumps(traceparent)}: not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); the run span starts a new trace")
    return {"id": run_id, "name": _env("RUNTEL_PARENT_RUN_NAME"), "context": ctx}


def _rank_number(name: str) -> Optional[int]:
    raw = _env(name)
    if raw is None:
        return None
    if not raw.isdigit():
        _warn_once(f"ignoring {name}={json.dumps(raw)}: not a non-negative integer")
        return None
    return int(raw)


def process_rank() -> Optional[dict[str, Optional[int]]]:
    """This process's rank: torchrun's RANK/WORLD_SIZE/LOCAL_RANK, else SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID."""
    for rank, world, local in (("RANK", "WORLD_SIZE", "LOCAL_RANK"), ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
        value = _rank_number(rank)
        if value is not None:
            return {"rank": value, "world_size": _rank_number(world), "local_rank": _rank_number(local)}
    return None


def rank_tags(rank: Mapping[str, Optional[int]]) -> dict[str, str]:
    tags = {"runtel.rank": str(rank["rank"]), "runtel.host": socket.gethostname()}
    if rank["world_size"] is not None:
        tags["runtel.world_size"] = str(rank["world_size"])
    if rank["local_rank"] is not None:
        tags["runtel.local_rank"] = str(rank["local_rank"])
    return tags


def new_run_id() -> str:
    """A run id as runtel makes them: 32 lowercase hex characters."""
    return secrets.token_hex(16)


def param_value(value: Any) -> str:
    """A param's string form, as runtel's flattenParams writes it (true/false/null, JSON lists)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([param_value(v) if isinstance(v, str) else _json_leaf(v) for v in value], separators=(",", ":"))
    if hasattr(value, "item"):  # numpy scalars
        return param_value(value.item())
    return str(value)


def _json_leaf(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_leaf(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return param_value(value)


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become ``a.b.c`` keys; every value becomes a string (see :func:`param_value`)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                out.update(flatten_params(value, full + "."))
            else:
                out[full] = "{}"
        else:
            out[full] = param_value(value)
    return out


def metric_value(value: Any) -> int | float | str:
    """runtel's encoding of ``ml.metric.value``: a number when finite and |v| < 2**63, else its string
    form (``"NaN"``, ``"Infinity"``, ``"-Infinity"``, ``"1e+300"``), which OTLP/JSON can carry."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if abs(value) < INT64_LIMIT else _js_number_string(float(value))
    value = float(value)
    if math.isfinite(value) and abs(value) < INT64_LIMIT:
        return value
    return _js_number_string(value)


def _js_number_string(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    # Python's shortest round-trip form, spelled like JavaScript's String(v) ("1e+300"). Between
    # 2**63 and 1e21 JavaScript writes all digits and Python an exponent; both read back the same.
    text = repr(value)
    if "e" in text and "e-" not in text and "e+" not in text:
        text = text.replace("e", "e+")
    return text


class Run:
    """One run: a span plus its log records. Create it with :meth:`RuntelOtel.start_run`."""

    def __init__(self, otel: "RuntelOtel", name: str, experiment: str, parent: Optional["Run"], params: Mapping[str, Any], tags: Mapping[str, str], run_id: Optional[str] = None, inherited: Optional[Mapping[str, Any]] = None):
        self._otel = otel
        self.id = run_id or new_run_id()
        self.name = name
        self.experiment = experiment
        self.parent = parent
        # The parent's id when it lives in another process (RUNTEL_PARENT_RUN_ID).
        self.parent_id: Optional[str] = parent.id if parent is not None else (inherited["id"] if inherited is not None else None)
        self.status: Optional[str] = None
        self._start_ns = time.time_ns()
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, int, int | float | str]] = {}  # key -> (step, time, value)
        self._metric_records = 0  # ml.metric records emitted; ml.run.end carries the count
        self._max_step: Optional[int] = None
        # Params and tags on the span: 89 of the SDK's default 128 attributes, as runtel's JS
        # logger; the rest is counted in ml.run.dropped_*_count (the log records carry them all).
        self._span_budget = 89
        self._span_keys: set[str] = set()
        self._dropped = {"ml.param.": 0, "ml.tag.": 0}
        # Heartbeats: something was emitted since the heartbeat thread last looked, and since when it saw none.
        self._active = False
        self._quiet_since = time.monotonic()

        identity: dict[str, Any] = {
            "ml.run.id": self.id,
            "ml.run.name": name,
            "ml.experiment.name": experiment,
        }
        if self.parent_id is not None:
            identity["ml.run.parent_id"] = self.parent_id
        # A top-level run starts a new trace, whatever span is current; a nested run is a child
        # of its parent's span, and a run of a launched process of the launcher's (TRACEPARENT).
        if parent is not None:
            parent_ctx = trace.set_span_in_context(parent.span)
        else:
            parent_ctx = inherited["context"] if inherited is not None else Context()
        self.span = otel.tracer.start_span(name, context=parent_ctx, kind=SpanKind.INTERNAL, attributes=identity, start_time=self._start_ns)
        self._ctx = trace.set_span_in_context(self.span)

        flat_params = flatten_params(params)
        flat_tags = {str(k): str(v) for k, v in tags.items()}
        attrs = dict(identity)
        rest: dict[str, str] = {}
        for key, value in [(f"ml.param.{k}", v) for k, v in flat_params.items()] + [(f"ml.tag.{k}", v) for k, v in flat_tags.items()]:
            if len(attrs) < otel.record_attribute_limit:
                attrs[key] = value
            else:
                rest[key] = value
            self._span_attr(key, value)
        self._emit("ml.run.start", attrs, self._start_ns)
        self._emit_split(rest, self._start_ns)
        otel._run_started(self)

    def child_env(self) -> dict[str, str]:
        """The environment for a process this run launches (merge it into ``subprocess``'s ``env``):
        runs started there become this run's children, in its experiment and trace. Every key is set;
        an empty value means none (so it also clears one this process inherited)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=self._ctx)
        return {
            "RUNTEL_PARENT_RUN_ID": self.id,
            "RUNTEL_PARENT_RUN_NAME": self.name,
            "RUNTEL_EXPERIMENT": self.experiment,
            "TRACEPARENT": carrier.get("traceparent", ""),
            "TRACESTATE": carrier.get("tracestate", ""),
        }

    # -- logging ------------------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are write-once: log each key once."""
        flat = {f"ml.param.{k}": v for k, v in flatten_params(params).items()}
        for key, value in flat.items():
            self._span_attr(key, value)
        self._emit_split(flat, time.time_ns())

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        flat = {f"ml.tag.{k}": str(v) for k, v in tags.items()}
        for key, value in flat.items():
            self._span_attr(key, value)
        self._emit_split(flat, time.time_ns())

    def log_metric(self, key: str, value: Any, step: int = 0, timestamp_ns: Optional[int] = None) -> None:
        """One point: one ``ml.metric`` log record (never aggregated)."""
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        encoded = metric_value(value)
        step = int(step)
        self._emit("ml.metric", {"ml.metric.key": key, "ml.metric.value": encoded, "ml.metric.step": step, "ml.run.id": self.id}, ts)
        with self._lock:
            self._metric_records += 1
            latest = self._latest.get(key)
            if latest is None or (step, ts) >= (latest[0], latest[1]):
                self._latest[key] = (step, ts, encoded)
            if self._max_step is None or step > self._max_step:
                self._max_step = step
            latest_value, max_step = self._latest[key][2], self._max_step
        self._otel._observe(self, key, latest_value, max_step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0, timestamp_ns: Optional[int] = None) -> None:
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts)

    # -- finishing ----------------------------------------------------------------------------

    def finish(self, status: str = "success", error: Optional[BaseException] = None) -> None:
        """Ends the run (idempotent): ``ml.run.end`` record, span status and end."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with self._lock:
            if self.status is not None:
                return
            self.status = status
            latest = dict(self._latest)
        end_ns = max(time.time_ns(), self._start_ns)
        # The records its end counts: a bridge that has them all forwards the end without waiting for late ones.
        end_attrs: dict[str, Any] = {"ml.run.id": self.id, "ml.run.status": status, "ml.run.metric_records_count": self._metric_records}
        if error is not None:
            end_attrs["exception.type"] = type(error).__name__
            end_attrs["exception.message"] = str(error)
            end_attrs["exception.stacktrace"] = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self._emit("ml.run.end", end_attrs, end_ns)

        for key, (_step, _ts, value) in sorted(latest.items()):
            self.span.set_attribute(f"ml.metric.{key}", value)
        self.span.set_attribute("ml.run.status", status)
        if self._dropped["ml.param."]:
            self.span.set_attribute("ml.run.dropped_params_count", self._dropped["ml.param."])
        if self._dropped["ml.tag."]:
            self.span.set_attribute("ml.run.dropped_tags_count", self._dropped["ml.tag."])
        if status == "success":
            self.span.set_status(Status(StatusCode.OK))
        else:
            description = status if status in ("killed", "crashed") else (f"{type(error).__name__}: {error}" if error is not None else "failed")
            if error is not None:
                self.span.record_exception(error, timestamp=end_ns, escaped=True)
            self.span.set_status(Status(StatusCode.ERROR, description))
        self.span.end(end_time=end_ns)
        self._otel._run_finished(self, status, (end_ns - self._start_ns) / 1e9)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, _tb) -> bool:
        if exc is None:
            self.finish("success")
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("killed", exc)
        else:
            self.finish("failed", exc)
        return False

    def _span_attr(self, key: str, value: str) -> None:
        if key in self._span_keys:
            if key.startswith("ml.tag."):  # a tag may be overwritten; params are write-once
                self.span.set_attribute(key, value)
            return
        if self._span_budget <= 0:
            self._dropped["ml.param." if key.startswith("ml.param.") else "ml.tag."] += 1
            return
        self._span_budget -= 1
        self._span_keys.add(key)
        self.span.set_attribute(key, value)

    # -- records ------------------------------------------------------------------------------

    def _emit_split(self, entries: Mapping[str, str], ts: int) -> None:
        """``ml.params`` / ``ml.tags`` records, each ``ml.run.id`` plus at most limit - 1 entries."""
        per_record = self._otel.record_attribute_limit - 1
        for prefix, event in (("ml.param.", "ml.params"), ("ml.tag.", "ml.tags")):
            items = [(k, v) for k, v in entries.items() if k.startswith(prefix)]
            for i in range(0, len(items), per_record):
                self._emit(event, {"ml.run.id": self.id, **dict(items[i : i + per_record])}, ts)

    def _emit(self, event_name: str, attributes: dict[str, Any], ts: int) -> None:
        self._active = True
        self._otel._emit(self, event_name, attributes, ts)


def _otlp_exporters():
    """The OTLP exporters for OTEL_EXPORTER_OTLP_PROTOCOL: ``grpc``, else OTLP/HTTP protobuf."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: runtel_otel supports grpc and http/protobuf")
    return OTLPSpanExporter(), OTLPLogExporter(), OTLPMetricExporter()


class RuntelOtel:
    """Tracer, logger and meter providers exporting OTLP/HTTP (protobuf) per the standard env."""

    def __init__(self, experiment: Optional[str] = None, *, record_attribute_limit: int = 128, metric_export_interval_ms: Optional[int] = None, heartbeat_interval_ms: Optional[float] = None):
        # A launched process's runs land in the launcher's experiment (RUNTEL_EXPERIMENT from child_env()).
        experiment = experiment or _env("RUNTEL_EXPERIMENT") or "default"
        self.experiment = experiment
        self.record_attribute_limit = record_attribute_limit
        self.heartbeat_interval_ms = _heartbeat_interval(heartbeat_interval_ms)
        self._open_runs: set[Run] = set()
        self._runs_lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeats: Optional[threading.Thread] = None
        resource = Resource.create(self._resource_attributes(experiment))
        self.tracer_provider = TracerProvider(resource=resource)
        span_exporter, log_exporter, metric_exporter = _otlp_exporters()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self.tracer = self.tracer_provider.get_tracer(SCOPE_NAME, SCOPE_VERSION)

        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, max_queue_size=32768))
        self.logger = self.logger_provider.get_logger(SCOPE_NAME, SCOPE_VERSION)

        interval = metric_export_interval_ms or int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "15000"))
        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval)
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[reader],
            views=[View(instrument_name="ml.run.duration", aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS))],
        )
        meter = self.meter_provider.get_meter(SCOPE_NAME, SCOPE_VERSION)
        self._gauge_lock = threading.Lock()
        self._gauge_values: dict[tuple[str, str, str, str], float] = {}  # (run id, run name, experiment, key) -> value
        self._gauge_steps: dict[tuple[str, str, str], int] = {}
        meter.create_observable_gauge("ml.metric", callbacks=[self._observe_metrics], description="latest value of each run's metric")
        meter.create_observable_gauge("ml.run.step", callbacks=[self._observe_steps], description="largest step of each run")
        self._runs_counter = meter.create_counter("ml.runs", unit="{run}", description="finished runs")
        self._duration = meter.create_histogram("ml.run.duration", unit="s", description="run duration")

    @staticmethod
    def _resource_attributes(experiment: str) -> dict[str, str]:
        # OTEL_SERVICE_NAME and a service.name in OTEL_RESOURCE_ATTRIBUTES win (Resource.create reads
        # them); otherwise the experiment names the service.
        if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
            return {}
        return {"service.name": os.environ.get("RUNTEL_EXPERIMENT") or experiment}

    def start_run(self, name: Optional[str] = None, *, parent: Any = None, params: Optional[Mapping[str, Any]] = None, tags: Optional[Mapping[str, str]] = None, experiment: Optional[str] = None) -> Run:
        """Starts a run: nested when ``parent`` is given (it inherits the parent's experiment); with no
        parent, the child of the run the environment names (RUNTEL_PARENT_RUN_ID), unless
        ``parent=TOP_LEVEL``. Default name ``run-<8 hex>``, for a launched process
        ``<parent name>-<8 hex>`` or ``…-rank<N>`` where a rank is set."""
        local = parent if isinstance(parent, Run) else None
        inherited = inherited_parent() if parent is None else None
        rank = process_rank() if local is None else None
        exp = experiment or (local.experiment if local is not None else self.experiment)
        run_id = new_run_id()
        if name is None:
            base = (inherited or {}).get("name") or f"run-{run_id[:8]}"
            if rank is not None:
                name = f"{base}-rank{rank['rank']}"
            else:
                name = f"{base}-{run_id[:8]}" if (inherited or {}).get("name") else base
        all_tags = {**(rank_tags(rank) if rank is not None else {}), **(tags or {})}
        return Run(self, name, exp, local, params or {}, all_tags, run_id=run_id, inherited=inherited)

    def force_flush(self, timeout_ms: int = 30000) -> bool:
        ok = self.tracer_provider.force_flush(timeout_ms)
        ok = self.logger_provider.force_flush(timeout_ms) and ok
        return self.meter_provider.force_flush(timeout_ms) and ok

    def shutdown(self) -> None:
        """Flushes and shuts the providers down (spans first, so a run's span leaves with its records)."""
        self._stop.set()
        if self._heartbeats is not None:
            self._heartbeats.join()
        self.force_flush()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()

    # -- internals ----------------------------------------------------------------------------

    def _emit(self, run: Run, event_name: str, attributes: dict[str, Any], ts: int) -> None:
        kwargs: dict[str, Any] = {"timestamp": ts, "observed_timestamp": time.time_ns()}
        attrs = dict(attributes)
        if HAS_EVENT_NAME:
            kwargs["event_name"] = event_name
        else:
            attrs["event.name"] = event_name
        kwargs["attributes"] = attrs
        if _HAS_CONTEXT:
            kwargs["context"] = run._ctx
        else:
            sc = run.span.get_span_context()
            kwargs.update(trace_id=sc.trace_id, span_id=sc.span_id, trace_flags=sc.trace_flags)
        self.logger.emit(ApiLogRecord(**kwargs))

    def _observe(self, run: Run, key: str, value: int | float | str, max_step: Optional[int]) -> None:
        with self._gauge_lock:
            if isinstance(value, (int, float)):
                self._gauge_values[(run.id, run.name, run.experiment, key)] = float(value)
            if max_step is not None:
                self._gauge_steps[(run.id, run.name, run.experiment)] = max_step

    def _observe_metrics(self, _options: CallbackOptions):
        with self._gauge_lock:
            items = list(self._gauge_values.items())
        return [
            Observation(v, {"ml.metric.key": key, "ml.run.id": rid, "ml.run.name": rname, "ml.experiment.name": exp})
            for (rid, rname, exp, key), v in items
        ]

    def _observe_steps(self, _options: CallbackOptions):
        with self._gauge_lock:
            items = list(self._gauge_steps.items())
        return [Observation(step, {"ml.run.id": rid, "ml.run.name": rname, "ml.experiment.name": exp}) for (rid, rname, exp), step in items]

    def _run_started(self, run: Run) -> None:
        with self._runs_lock:
            self._open_runs.add(run)
            if self._heartbeats is None and not self._stop.is_set() and math.isfinite(self.heartbeat_interval_ms):
                self._heartbeats = threading.Thread(target=self._beat, name="runtel-heartbeats", daemon=True)
                self._heartbeats.start()

    def _beat(self) -> None:
        """Every quarter interval: a run that emitted nothing for an interval gets an ``ml.run.heartbeat``."""
        interval = self.heartbeat_interval_ms / 1000
        while not self._stop.wait(interval / 4):
            now = time.monotonic()
            with self._runs_lock:
                runs = list(self._open_runs)
            for run in runs:
                if run._active:
                    run._active = False
                    run._quiet_since = now
                elif now - run._quiet_since >= interval and run.status is None:
                    run._quiet_since = now
                    self._emit(run, "ml.run.heartbeat", {"ml.run.id": run.id}, time.time_ns())
                    run._active = False

    def _run_finished(self, run: Run, status: str, seconds: float) -> None:
        with self._runs_lock:
            self._open_runs.discard(run)
        attrs = {"ml.run.status": status, "ml.experiment.name": run.experiment}
        self._runs_counter.add(1, attrs)
        self._duration.record(max(seconds, 0.0), attrs)
