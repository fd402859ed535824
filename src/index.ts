// runtel's public API. Explicit named exports only.

export type {
  ConfigValue,
  FinalRunStatus,
  LogArtifactOptions,
  LogMetricsOptions,
  LogModelOptions,
  Logger,
  ModelInput,
  Run,
  RunOptions,
  RunStatus,
} from './core/types.js';
export type {
  ArtifactEvent,
  ErrorInfo,
  MetricPoint,
  MetricsEvent,
  ParamsEvent,
  RunEvent,
  RunFinishedEvent,
  RunStartedEvent,
  TagsEvent,
} from './core/events.js';
export { metricPoints } from './core/events.js';
export type { RunBackend } from './core/RunBackend.js';
export type { ArtifactRecord, MetricSample, RunRecord } from './core/RunRecord.js';
export { applyEvent, lastMetricValues } from './core/RunRecord.js';
export type { BackendErrorHandler, BackendFailure } from './core/errors.js';
export { BackendLogger } from './core/BackendLogger.js';
export type { BackendLoggerOptions } from './core/BackendLogger.js';
export { activeRun, withRun } from './core/context.js';
export { flattenParams } from './core/params.js';
export { configureProcessExit } from './core/processExit.js';
export type { ProcessExitOptions } from './core/processExit.js';

export { InMemoryLogger } from './backends/InMemoryLogger.js';
export { ConsoleLogger } from './backends/ConsoleLogger.js';
export type { ConsoleLoggerOptions } from './backends/ConsoleLogger.js';
export { JsonlLogger } from './backends/jsonl/JsonlLogger.js';
export type { JsonlLoggerOptions } from './backends/jsonl/JsonlLogger.js';
export { readRun, listRuns, findRun } from './backends/jsonl/store.js';
export type { StoredRun } from './backends/jsonl/store.js';
export { CompositeLogger } from './backends/CompositeLogger.js';
export { createLoggerFromEnv, backendsFromEnv } from './backends/createLoggerFromEnv.js';
export { callbacksFor, tfjsCallbacks } from './callbacks/callbacks.js';
export type { MetricLogs, RunCallbacks, TfjsCustomCallback } from './callbacks/callbacks.js';
export { Experiment } from './experiment/Experiment.js';
export type {
  BestTrial,
  ExperimentGoal,
  ExperimentOptions,
  ExperimentSummary,
  RandomSearch,
  RandomSpaceEntry,
  RangeSpec,
  SearchSpec,
  TrialFunction,
  TrialInfo,
  TrialParams,
  TrialSummary,
} from './experiment/Experiment.js';
