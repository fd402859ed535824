// An `ml.system` log record → a system_metrics event: `ml.system.<name>` attributes back to
// MLflow's `system/<name>` keys. Keys that break the key rule and non-numbers are left out.

import type { SystemMetricsEvent } from '../../core/events.js';
import { validateKey } from '../../core/validation.js';
import { SYSTEM_PREFIX } from '../../system/collect.js';
import { ATTR_SYSTEM_STEP, SYSTEM_ATTR_PREFIX } from '../conventions.js';

export function systemEvent(runId: string, a: Record<string, unknown>, timeMillis: number): SystemMetricsEvent {
  const rawStep = a[ATTR_SYSTEM_STEP];
  const step = typeof rawStep === 'string' || typeof rawStep === 'bigint' ? Number(rawStep) : rawStep;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new TypeError('ml.system record without a valid ml.system.step');
  const values: Record<string, number> = {};
  for (const [name, value] of Object.entries(a)) {
    if (!name.startsWith(SYSTEM_ATTR_PREFIX) || name === ATTR_SYSTEM_STEP) continue;
    const number = typeof value === 'string' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isFinite(number)) continue;
    const key = SYSTEM_PREFIX + name.slice(SYSTEM_ATTR_PREFIX.length);
    try {
      validateKey(key, 'metric');
    } catch {
      continue;
    }
    values[key] = number;
  }
  return { type: 'system_metrics', runId, step, timestamp: timeMillis, values };
}
