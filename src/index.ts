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
export type { ConsoleBackendOptions, ConsoleLoggerOptions, ConsoleMode } from './backends/ConsoleLogger.js';
export { JsonlLogger } from './backends/jsonl/JsonlLogger.js';
export type { JsonlLoggerOptions } from './backends/jsonl/JsonlLogger.js';
export { readRun, listRuns, findRun } from './backends/jsonl/store.js';
export type { StoredRun } from './backends/jsonl/store.js';
export { CompositeLogger } from './backends/CompositeLogger.js';
export { createLoggerFromEnv, backendsFromEnv } from './backends/createLoggerFromEnv.js';
export { callbacksFor, tfjsCallbacks } from './callbacks/callbacks.js';
export type { MetricLogs, RunCallbacks, TfjsCallbacksOptions, TfjsCustomCallback, TfjsModule } from './callbacks/callbacks.js';
export { OtelLogger } from './otel/OtelLogger.js';
export type { OtelLoggerOptions } from './otel/OtelLogger.js';
export { OtelBackend } from './otel/OtelBackend.js';
export type { OtelBackendOptions } from './otel/OtelBackend.js';
export { startOtel, createOtelLoggerFromEnv, otlpEndpointConfigured } from './otel/startOtel.js';
export type { OtelHandle, OtlpHttpProtocol, StartOtelOptions } from './otel/startOtel.js';
export { CountingBatchLogRecordProcessor, processDeliveryStats } from './otel/CountingBatchLogRecordProcessor.js';
export type { CountingBatchLogRecordProcessorOptions, DeliveryStats, DeliveryStatsSource } from './otel/CountingBatchLogRecordProcessor.js';
export { fromMetricAttributeValue, toMetricAttributeValue } from './otel/conventions.js';
export { DeliveryBackend } from './delivery/DeliveryBackend.js';
export type { DeliveryOptions, TargetStats } from './delivery/DeliveryBackend.js';
export type { Channel, DeliveryContext, DeliveryTarget, StartedRun, Work } from './delivery/DeliveryTarget.js';
export { HttpClient } from './delivery/HttpClient.js';
export type { HttpClientOptions, HttpRetryOptions } from './delivery/HttpClient.js';
export { TargetError } from './delivery/TargetError.js';
export { syncRuns } from './sync/syncRuns.js';
export type { SyncOptions, SyncProgress, SyncResult } from './sync/syncRuns.js';
export { Experiment } from './experiment/Experiment.js';
export type {
  BestTrial,
  ExperimentGoal,
  ExperimentOptions,
  ExperimentSummary,
  ProcessTrial,
  RandomSearch,
  RandomSpaceEntry,
  RangeSpec,
  SearchSpec,
  TrialFunction,
  TrialInfo,
  TrialParams,
  TrialSummary,
} from './experiment/Experiment.js';
export { MlflowLogger } from './mlflow/MlflowLogger.js';
export type { MlflowLoggerOptions } from './mlflow/MlflowLogger.js';
export type { MlflowBackendOptions, MlflowStats } from './mlflow/MlflowBackend.js';
export { MlflowClient, MlflowError } from './mlflow/MlflowClient.js';
export type { MlflowClientOptions } from './mlflow/MlflowClient.js';
export { MlflowLogRecordExporter, MlflowSpanExporter, createMlflowExporters } from './mlflow/exporters.js';
export type { MlflowExporterOptions } from './mlflow/exporters.js';
export { OtelRunTranslator } from './otel/translate/OtelRunTranslator.js';
export { WandbLogger } from './wandb/WandbLogger.js';
export type { WandbLoggerOptions } from './wandb/WandbLogger.js';
export { WandbBackend, wandbModeFromEnv } from './wandb/WandbBackend.js';
export type { WandbBackendOptions, WandbMode, WandbStats } from './wandb/WandbBackend.js';
export { WandbClient, WandbError, DEFAULT_WANDB_BASE_URL } from './wandb/WandbClient.js';
export type { WandbClientOptions } from './wandb/WandbClient.js';
export { WandbLogRecordExporter, WandbSpanExporter, createWandbExporters } from './wandb/exporters.js';
export { runEventExporters } from './otel/translate/RunEventExporters.js';
export type { RunEventExporterPair } from './otel/translate/RunEventExporters.js';
export type { WandbExporterOptions } from './wandb/exporters.js';
export { syncRunToWandb, syncRunsToWandb } from './wandb/sync.js';
export type { WandbSyncProgress, WandbSyncResult } from './wandb/sync.js';
export { wandbRunId } from './wandb/history.js';
export { createBridge, RuntelBridge, DEFAULT_BRIDGE_HOST, DEFAULT_BRIDGE_PORT } from './bridge/RuntelBridge.js';
export type { BridgeOptions, BridgeStats } from './bridge/RuntelBridge.js';
export type { BridgeTarget } from './bridge/ingest/Ingest.js';
export { bridgeTargetsFromEnv } from './bridge/targets.js';
export type { BridgeTargetOptions } from './bridge/targets.js';
export { artifactTagKey, ARTIFACT_TAG_PREFIX } from './bridge/ingest/artifacts.js';
export type { RunFinder, RunIdentity } from './bridge/ingest/RunDirectory.js';
export { logInputsFromOtlp, spanInputsFromOtlp } from './otel/translate/otlpInputs.js';
