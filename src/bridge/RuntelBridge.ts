// The bridge: receivers (server/: OTLP/HTTP and OTLP/gRPC) that turn OTLP from any SDK or Collector into runs through the
// ingest pipeline (ingest/) and forward them to MLflow and W&B (targets.ts). This file reads the
// configuration (option ?? env ?? default), builds the pieces and starts and stops them. See
// docs/bridge.md.

import { isIP } from 'node:net';
import type { BackendErrorHandler } from '../core/errors.js';
import { getBooleanFromEnv, getNumberFromEnv, getStringFromEnv } from '../core/env.js';
import { heartbeatInterval, staleAfterFromEnv } from '../core/liveness.js';
import { MlflowBackend } from '../mlflow/MlflowBackend.js';
import type { MlflowBackendOptions } from '../mlflow/MlflowBackend.js';
import type { WandbBackendOptions } from '../wandb/WandbBackend.js';
import { OtlpCodec } from './ingest/codec.js';
import { Ingest } from './ingest/Ingest.js';
import type { BridgeTarget, IngestStats } from './ingest/Ingest.js';
import { mlflowRunFinder } from './ingest/RunDirectory.js';
import type { RunFinder } from './ingest/RunDirectory.js';
import { BearerToken, isLoopbackHost } from './server/auth.js';
import { HttpReceiver } from './server/HttpReceiver.js';
import type { HttpReceiverStats } from './server/HttpReceiver.js';
import { GrpcReceiver } from './server/GrpcReceiver.js';
import type { GrpcReceiverStats } from './server/GrpcReceiver.js';
import { DEFAULT_MAX_QUEUED_POINTS, bridgeTargetsFromEnv, describeTarget } from './targets.js';

export { isLoopbackHost } from './server/auth.js';

export const DEFAULT_BRIDGE_PORT = 4320;
export const DEFAULT_BRIDGE_HOST = '127.0.0.1';

export interface BridgeOptions {
  /** Default: env `RUNTEL_BRIDGE_HOST`, else 127.0.0.1. */
  host?: string;
  /** OTLP/HTTP port. Default: env `RUNTEL_BRIDGE_PORT`, else 4320. 0 picks a free port. */
  port?: number;
  /** OTLP/gRPC port, beside HTTP. Default: env `RUNTEL_BRIDGE_GRPC_PORT`, else none (gRPC off). 0 picks a free port. */
  grpcPort?: number;
  /** A gRPC connection is closed (the client reconnects) this long after it opened. Default 600,000 ms. */
  grpcMaxConnectionAgeMillis?: number;
  /** A gRPC call still in flight when its connection closes is cut off after this long. Default 30,000 ms. */
  grpcMaxConnectionAgeGraceMillis?: number;
  /** Bearer token every OTLP request must carry. Default: env `RUNTEL_BRIDGE_TOKEN`. */
  token?: string;
  /** Listen on a non-loopback address without a token. Default: env `RUNTEL_BRIDGE_ALLOW_INSECURE`, else false. */
  allowInsecure?: boolean;
  /**
   * Where runs go. Default: an MlflowBackend when MLFLOW_TRACKING_URI is set (or `mlflow` is given)
   * and a WandbBackend when WANDB_API_KEY is set (or `wandb` is given), both finding runs they have.
   */
  targets?: BridgeTarget[];
  /** Options of the MLflow target, or false for none. */
  mlflow?: MlflowBackendOptions | false;
  /** Options of the W&B target, or false for none. */
  wandb?: WandbBackendOptions | false;
  /** Body bytes on the wire. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Body bytes after decompression. Default 64 MiB. */
  maxDecompressedBytes?: number;
  /** Bytes of all bodies being read at once; past it, 503. Default 256 MiB. */
  maxInflightBytes?: number;
  /** Metric points queued in a target before requests are refused with 503. Default 200,000. */
  maxQueuedPoints?: number;
  /** Retry-After (seconds) when the targets are busy. Default 5. */
  retryAfterSeconds?: number;
  /**
   * How long a request waits for its data to reach the targets before it is answered "retry later"
   * (keep it below the sender's timeout). Default: env `RUNTEL_BRIDGE_ACK_TIMEOUT_MILLIS`, else 8000.
   */
  ackTimeoutMillis?: number;
  /** How long records of a run whose start was not seen (and MLflow does not know) are refused before they are taken as they are. Default 30,000 ms. */
  orphanGraceMillis?: number;
  /** Look runs up in these as well as in the MLflow target (tests, other stores). */
  runFinders?: RunFinder[];
  /**
   * How long a run's end waits for its last records before it is forwarded (a Collector's trace and
   * log pipelines deliver independently). Later records are still forwarded. Default 2,000 ms.
   */
  finishSettleMillis?: number;
  /** Runs the translator remembers for de-duplication. Default 1,000. */
  maxRuns?: number;
  /** Metric points per run the translator remembers for de-duplication. Default 100,000 (MLflow also drops exact duplicates itself). */
  maxSeenPointsPerRun?: number;
  /** Metric points remembered for de-duplication in all (about 70 bytes each); past it the least recently active runs forget theirs. Default 1,000,000. */
  maxSeenPoints?: number;
  /** How long `close()` keeps delivering what was taken. Default: env `RUNTEL_FLUSH_TIMEOUT_MILLIS`, else 5000. */
  flushTimeoutMillis?: number;
  /**
   * The heartbeat interval the emitters use (runtel's emit `ml.run.heartbeat` when quiet for this
   * long). Default: env `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000.
   */
  heartbeatIntervalMillis?: number;
  /**
   * An open run for which nothing (record, span or heartbeat) arrived this long is finished
   * `crashed` in every target, once. At least 2 heartbeat intervals. Default: env
   * `RUNTEL_BRIDGE_STALE_AFTER_MILLIS`, else 3 heartbeat intervals (90 s).
   */
  staleAfterMillis?: number;
  /** Target failures (default: one line on stderr per kind). */
  onError?: BackendErrorHandler;
  /** Where the bridge's own lines go (default: stderr). Never given tokens or headers. */
  log?: (line: string) => void;
}

export type BridgeStats = HttpReceiverStats &
  GrpcReceiverStats &
  IngestStats & {
    /** Metric points queued in the targets (the largest of them). */
    queuedPoints: number;
    /** MLflow look-ups that failed. */
    lookupFailures: number;
    /** Metric points remembered for de-duplication (bounded by maxSeenPoints). */
    rememberedPoints: number;
    /** Param and tag keys dropped for breaking the key rule (MLflow's; their records were kept). */
    droppedKeys: number;
  };

/**
 * The bridge. The constructor checks the configuration and builds the targets; `listen()` starts
 * serving; `close()` stops taking requests and delivers what was taken. `createBridge()` constructs
 * and listens.
 */
export class RuntelBridge {
  readonly host: string;
  /** The targets, described without credentials (`MLflow http://…`). */
  readonly targets: string[];
  /** How long a silent run is given before it is finished `crashed`. */
  readonly staleAfterMillis: number;
  private readonly _ingest: Ingest;
  private readonly _http: HttpReceiver;
  private readonly _grpc: GrpcReceiver | undefined;
  private _closing: Promise<void> | undefined;

  constructor(options: BridgeOptions = {}) {
    this.host = options.host ?? getStringFromEnv('RUNTEL_BRIDGE_HOST') ?? DEFAULT_BRIDGE_HOST;
    const port = options.port ?? getNumberFromEnv('RUNTEL_BRIDGE_PORT') ?? DEFAULT_BRIDGE_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bridge port must be an integer 0–65535, got ${port}`);
    const token = options.token ?? getStringFromEnv('RUNTEL_BRIDGE_TOKEN');
    const allowInsecure = options.allowInsecure ?? getBooleanFromEnv('RUNTEL_BRIDGE_ALLOW_INSECURE') ?? false;
    if (token === undefined && !allowInsecure && !isLoopbackHost(this.host)) {
      throw new Error(
        `refusing to listen on ${this.host} without a token: anyone who can reach it could write runs. ` +
          'Set RUNTEL_BRIDGE_TOKEN (clients send Authorization: Bearer <token>), or pass --allow-insecure (RUNTEL_BRIDGE_ALLOW_INSECURE=true) behind a trusted network.',
      );
    }
    const maxQueuedPoints = positive(options.maxQueuedPoints ?? DEFAULT_MAX_QUEUED_POINTS, 'maxQueuedPoints');
    const heartbeatName = options.heartbeatIntervalMillis === undefined ? undefined : 'heartbeatIntervalMillis';
    this.staleAfterMillis = staleAfterFromEnv(options.staleAfterMillis, 'staleAfterMillis', 'RUNTEL_BRIDGE_STALE_AFTER_MILLIS', heartbeatInterval(options.heartbeatIntervalMillis), heartbeatName);
    const retryAfterSeconds = positive(options.retryAfterSeconds ?? 5, 'retryAfterSeconds');
    const targets = options.targets ?? bridgeTargetsFromEnv({ ...options, maxQueuedPoints });
    if (targets.length === 0) {
      throw new Error('the bridge needs somewhere to send runs: set MLFLOW_TRACKING_URI (MLflow) and/or WANDB_API_KEY (W&B, online mode)');
    }
    this.targets = targets.map(describeTarget);
    const maxRuns = options.maxRuns ?? 1_000;
    const finders = [...(options.runFinders ?? [])];
    for (const target of targets) if (target instanceof MlflowBackend) finders.push(mlflowRunFinder(target.client));
    this._ingest = new Ingest({
      targets,
      onError: options.onError,
      finders,
      orphanGraceMillis: options.orphanGraceMillis ?? 30_000,
      finishSettleMillis: options.finishSettleMillis ?? 2_000,
      maxRuns,
      maxSeenPointsPerRun: options.maxSeenPointsPerRun ?? 100_000,
      maxSeenPoints: options.maxSeenPoints ?? 1_000_000,
      maxQueuedPoints,
      retryAfterSeconds,
      ackTimeoutMillis: positive(options.ackTimeoutMillis ?? getNumberFromEnv('RUNTEL_BRIDGE_ACK_TIMEOUT_MILLIS') ?? 8000, 'ackTimeoutMillis (RUNTEL_BRIDGE_ACK_TIMEOUT_MILLIS)'),
      staleAfterMillis: this.staleAfterMillis,
    });
    const codec = new OtlpCodec();
    const bearer = new BearerToken(token);
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const maxDecompressedBytes = positive(options.maxDecompressedBytes ?? 64 << 20, 'maxDecompressedBytes');
    this._http = new HttpReceiver(this._ingest, codec, {
      host: this.host,
      port,
      token: bearer,
      maxBodyBytes: positive(options.maxBodyBytes ?? 16 << 20, 'maxBodyBytes'),
      maxDecompressedBytes,
      maxInflightBytes: positive(options.maxInflightBytes ?? 256 << 20, 'maxInflightBytes'),
      retryAfterSeconds,
      targets: targets.length,
      log,
    });
    const grpcPort = options.grpcPort ?? getNumberFromEnv('RUNTEL_BRIDGE_GRPC_PORT');
    if (grpcPort !== undefined) {
      if (!Number.isInteger(grpcPort) || grpcPort < 0 || grpcPort > 65535) throw new RangeError(`bridge gRPC port (RUNTEL_BRIDGE_GRPC_PORT) must be an integer 0–65535, got ${grpcPort}`);
      this._grpc = new GrpcReceiver(this._ingest, codec, {
        host: this.host,
        port: grpcPort,
        token: bearer,
        maxMessageBytes: maxDecompressedBytes,
        maxConnectionAgeMillis: positive(options.grpcMaxConnectionAgeMillis ?? 600_000, 'grpcMaxConnectionAgeMillis'),
        maxConnectionAgeGraceMillis: positive(options.grpcMaxConnectionAgeGraceMillis ?? 30_000, 'grpcMaxConnectionAgeGraceMillis'),
        log,
      });
    }
  }

  /** The OTLP/HTTP port (the one picked, once listening on port 0). */
  get port(): number {
    return this._http.port;
  }

  /** The OTLP/gRPC port, once listening; undefined when gRPC is off. */
  get grpcPort(): number | undefined {
    return this._grpc?.port;
  }

  /** `http://host:port`, once listening. */
  get url(): string {
    const host = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}`;
  }

  async listen(): Promise<void> {
    await this._http.listen();
    await this._grpc?.listen();
  }

  stats(): BridgeStats {
    return { ...this._http.stats(), grpcResponses: {}, ...this._grpc?.stats(), ...this._ingest.stats(), queuedPoints: this._ingest.queuedPoints() };
  }

  /** The targets' failure counts, by `backend:operation`. */
  failureCounts(): Record<string, number> {
    return Object.assign({}, ...this._ingest.sinks.map((s) => s.failures.counts())) as Record<string, number>;
  }

  /** Stops taking requests (in-flight ones finish), then delivers everything queued and shuts the targets down. */
  close(): Promise<void> {
    this._closing ??= (async () => {
      await Promise.all([this._http.close(), this._grpc?.close()]);
      await this._ingest.close();
    })();
    return this._closing;
  }

  /** Delivers everything queued so far. */
  flush(): Promise<void> {
    return this._ingest.flush();
  }
}

/** Creates the bridge and starts listening. */
export async function createBridge(options: BridgeOptions = {}): Promise<RuntelBridge> {
  const bridge = new RuntelBridge(options);
  try {
    await bridge.listen();
  } catch (error) {
    await bridge.close();
    throw error;
  }
  return bridge;
}

function positive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}
