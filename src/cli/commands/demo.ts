// `runtel demo`: trains the Iris softmax-regression grid search (src/demo) and logs it.

import { Command } from 'commander';
import { dirOption, helpText, integerArg } from '../shared.js';

interface DemoCommandOptions {
  epochs: number;
  concurrency: number;
  seed: number;
  dir?: string;
  epochDelay?: number;
}

export function demoCommand(): Command {
  return new Command('demo')
    .summary('train a small real model (softmax regression on Iris, a 3 × 3 grid search) and log it')
    .description(
      'Train a small real model and log it: softmax regression on the Iris data set, a 3 × 3 grid over ' +
        'learning rate × L2 run as nested trials, with per-epoch curves and the trained weights.',
    )
    .option('--epochs <n>', 'epochs per trial', integerArg(1), 100)
    .option('--concurrency <n>', 'trials trained at once', integerArg(1), 3)
    .option('--seed <n>', 'seed of the train/validation split', integerArg(0), 42)
    .addOption(dirOption())
    .option('--epoch-delay <ms>', 'pause after each epoch so the progress bars can be watched (default: 10 on a terminal, else 0)', integerArg(0))
    .addHelpText(
      'after',
      helpText(
        'The backends are chosen as for createLoggerFromEnv(): RUNTEL_BACKENDS (default: jsonl,console); ' +
          'RUNTEL_CONSOLE=verbose prints every metric point; RUNTEL_SYSTEM_METRICS=true samples the machine for the search run (docs/system-metrics.md).',
        'Progress bars go to standard error when it is a terminal; the results table goes to standard output.',
        'Afterwards: runtel ls, runtel show iris-softmax.',
      ),
    )
    .action(async (options: DemoCommandOptions) => {
      // Loaded here so that the other commands do not pay for the backends (OpenTelemetry and all).
      const { runDemo } = await import('../../demo/runDemo.js');
      const summary = await runDemo({
        epochs: options.epochs,
        concurrency: options.concurrency,
        seed: options.seed,
        epochDelayMs: options.epochDelay ?? (process.stderr.isTTY === true ? 10 : 0),
        ...(options.dir !== undefined ? { dir: options.dir } : {}),
      });
      if (summary.best === undefined) process.exitCode = 1;
    });
}
