// `runtel bridge serve`: the OTLP (HTTP and gRPC) → MLflow / W&B bridge (src/bridge), until SIGINT or SIGTERM.

import { Command, Option } from 'commander';
import { CliError, helpText, integerArg } from '../shared.js';
import { cliStaleAfter } from '../liveness.js';

interface ServeOptions {
  host?: string;
  port?: number;
  grpcPort?: number;
  allowInsecure?: boolean;
  flushTimeout: number;
  staleAfter?: number;
}

export function bridgeCommand(): Command {
  const serve = new Command('serve')
    .summary('receive OTLP (a Collector or SDKs) and forward runs to MLflow and/or W&B')
    .description(
      "Receive OTLP/HTTP on /v1/traces, /v1/logs and /v1/metrics (protobuf or JSON, gzip or not), and OTLP/gRPC with --grpc-port, turn runtel's " +
        'ml.* spans and log records into runs, and forward them to MLflow (MLFLOW_TRACKING_URI) and/or W&B (WANDB_API_KEY). ' +
        'A request is answered once its data is delivered; until then the sender keeps it.',
    )
    .option('--host <host>', `address to listen on (default: $RUNTEL_BRIDGE_HOST, else 127.0.0.1)`)
    .option('--port <port>', 'port to listen on, 0 for any free one (default: $RUNTEL_BRIDGE_PORT, else 4320)', integerArg(0))
    .option('--grpc-port <port>', 'also receive OTLP/gRPC on this port, 0 for any free one (default: $RUNTEL_BRIDGE_GRPC_PORT, else no gRPC)', integerArg(0))
    .addOption(new Option('--allow-insecure', 'listen on a non-loopback address without RUNTEL_BRIDGE_TOKEN (behind a trusted network only)'))
    .option('--flush-timeout <ms>', 'on SIGINT/SIGTERM, how long to keep delivering what was taken', integerArg(1), 30_000)
    .option('--stale-after <ms>', 'finish a run crashed when nothing arrived for it this long (default: $RUNTEL_BRIDGE_STALE_AFTER_MILLIS, else 3 heartbeat intervals)', integerArg(1))
    .addHelpText(
      'after',
      helpText(
        {
          title: 'Environment:',
          items: [
            ['MLFLOW_TRACKING_URI', 'the MLflow target (with MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, MLFLOW_EXPERIMENT_NAME)'],
            ['WANDB_API_KEY', 'the W&B target (with WANDB_BASE_URL, WANDB_ENTITY, WANDB_PROJECT)'],
            ['RUNTEL_BRIDGE_TOKEN', 'clients must send Authorization: Bearer <token> (required off loopback)'],
            ['RUNTEL_HEARTBEAT_INTERVAL_MILLIS', "the emitters' heartbeat interval (default 30000); stale-after must be at least twice it"],
          ],
        },
        'Health: GET /healthz (alive), GET /readyz (ready for data). See docs/bridge.md.',
      ),
    )
    .action(async (options: ServeOptions) => {
      if (options.staleAfter !== undefined) cliStaleAfter(options.staleAfter);
      const { createBridge } = await import('../../bridge/RuntelBridge.js');
      const bridge = await createBridge({
        ...(options.staleAfter !== undefined ? { staleAfterMillis: options.staleAfter } : {}),
        ...(options.host !== undefined ? { host: options.host } : {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.grpcPort !== undefined ? { grpcPort: options.grpcPort } : {}),
        flushTimeoutMillis: options.flushTimeout,
        ...(options.allowInsecure === true ? { allowInsecure: true } : {}),
      }).catch((error: unknown) => {
        throw new CliError(`bridge: ${error instanceof Error ? error.message : String(error)}`);
      });
      const auth = (process.env.RUNTEL_BRIDGE_TOKEN ?? '').trim() !== '' ? 'bearer token required' : 'no token';
      const grpc = bridge.grpcPort === undefined ? '' : ` and OTLP/gRPC on ${bridge.host}:${bridge.grpcPort}`;
      process.stderr.write(`runtel bridge: listening on ${bridge.url}${grpc} (${auth}), forwarding to ${bridge.targets.join(' and ')}; runs silent for ${bridge.staleAfterMillis / 1000} s are finished crashed\n`);

      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) {
            process.stderr.write(`runtel bridge: ${signal} again, exiting without waiting for delivery\n`);
            process.exit(130);
          }
          stopping = true;
          process.stderr.write(`runtel bridge: ${signal}, delivering what was accepted (up to ${options.flushTimeout} ms)…\n`);
          // The targets give up at the flush timeout themselves (and say what they did not deliver);
          // this only catches a close that hangs past it, answers in flight included.
          const timer = setTimeout(() => {
            process.stderr.write('runtel bridge: flush timeout, exiting; what was not delivered was not acknowledged, so the sender still has it\n');
            process.exit(1);
          }, options.flushTimeout + 10_000);
          timer.unref();
          void bridge
            .close()
            .catch((error: unknown) => process.stderr.write(`runtel bridge: ${error instanceof Error ? error.message : String(error)}\n`))
            .then(() => {
              clearTimeout(timer);
              const stats = bridge.stats();
              process.stderr.write(`runtel bridge: stopped (${stats.logRecords} log records, ${stats.spans} spans, ${stats.events} run events forwarded)\n`);
              resolve();
            });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });

  return new Command('bridge').summary('OTLP → MLflow / W&B bridge').description('Forward runs sent as OpenTelemetry (OTLP/HTTP) to MLflow and W&B.').addCommand(serve);
}
