// How the CLI judges runs left `running`: the heartbeat interval from the environment, and the
// stale-after that `--stale-after` (or the default of 3 heartbeat intervals) gives.

import { HEARTBEAT_ENV, heartbeatInterval, staleAfter } from '../core/liveness.js';
import { CliError } from './shared.js';

/** The stale-after for `--stale-after <ms>` (undefined: 3 heartbeat intervals); bad input is a CliError naming what was wrong. */
export function cliStaleAfter(option: number | undefined): number {
  try {
    return staleAfter(option, '--stale-after', heartbeatInterval(), HEARTBEAT_ENV);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}
