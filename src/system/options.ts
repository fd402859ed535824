// When and how often a logger samples the machine: `option ?? env ?? default`. Bad values are
// programmer errors, thrown when the logger is made, naming the option or variable.

import { getStringFromEnv } from '../core/env.js';

/** MLflow's default sampling interval (`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`, 10 s). */
export const DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS = 10_000;

export interface SystemMetricsSettings {
  enabled: boolean;
  intervalMillis: number;
}

const TRUE = new Set(['true', '1']);
const FALSE = new Set(['false', '0']);

function envBoolean(name: string): boolean | undefined {
  const raw = getStringFromEnv(name);
  if (raw === undefined) return undefined;
  const lower = raw.toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  throw new TypeError(`${name} must be true, false, 1 or 0, got ${JSON.stringify(raw)}`);
}

/**
 * `systemMetrics ?? RUNTEL_SYSTEM_METRICS ?? MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING ?? false`, and
 * `intervalMillis ?? RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS ?? 10000`. The interval is read (and
 * checked) only when sampling is on.
 */
export function systemMetricsSettings(systemMetrics: boolean | undefined, intervalMillis: number | undefined): SystemMetricsSettings {
  if (systemMetrics !== undefined && typeof systemMetrics !== 'boolean') {
    throw new TypeError(`systemMetrics must be a boolean, got ${typeof systemMetrics}`);
  }
  const enabled = systemMetrics ?? envBoolean('RUNTEL_SYSTEM_METRICS') ?? envBoolean('MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING') ?? false;
  if (!enabled) return { enabled, intervalMillis: DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS };
  if (intervalMillis !== undefined) return { enabled, intervalMillis: checkInterval(intervalMillis, 'systemMetricsIntervalMillis') };
  const raw = getStringFromEnv('RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS');
  if (raw === undefined) return { enabled, intervalMillis: DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS };
  return { enabled, intervalMillis: checkInterval(Number(raw), 'RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS', raw) };
}

function checkInterval(value: number, name: string, raw?: string): number {
  // setInterval's own bound: 2^31 - 1 ms.
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > 2_147_483_647) {
    const got = raw === undefined ? String(value) : JSON.stringify(raw);
    throw new RangeError(`${name} must be a whole number of milliseconds greater than 0 (at most 2147483647), got ${got}`);
  }
  return value;
}
