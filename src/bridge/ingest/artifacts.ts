// The bridge cannot read the emitter's files, and must never read its own on a client's say-so: an
// artifact becomes a tag `runtel.artifact.<name>` with its kind, size, hash and source path.

import type { RunEvent } from '../../core/events.js';
import { ATTR_ARTIFACT_ERROR, ATTR_ARTIFACT_NAME, ATTR_ARTIFACT_PATH, ATTR_ARTIFACT_SHA256, ATTR_EVENT_NAME, ATTR_RUN_ID, EVENT_ARTIFACT } from '../../otel/conventions.js';
import type { OtelLogInput } from '../../otel/translate/inputs.js';

/** Tag (MLflow) for an artifact the bridge cannot copy: `runtel.artifact.<name>`. */
export const ARTIFACT_TAG_PREFIX = 'runtel.artifact.';

/** The events with each artifact replaced by its tag; `count` is told how many were. */
export function artifactsAsTags(events: RunEvent[], logs: readonly OtelLogInput[], count: (n: number) => void): RunEvent[] {
  if (!events.some((e) => e.type === 'artifact')) return events;
  const details = new Map<string, Record<string, unknown>>();
  for (const record of logs) {
    const a = record.attributes;
    if ((record.eventName ?? a[ATTR_EVENT_NAME]) !== EVENT_ARTIFACT) continue;
    details.set(`${String(a[ATTR_RUN_ID])}\0${String(a[ATTR_ARTIFACT_NAME])}\0${record.timeMillis}`, a);
  }
  let n = 0;
  const out = events.map((event): RunEvent => {
    if (event.type !== 'artifact') return event;
    n++;
    const a = details.get(`${event.runId}\0${event.name}\0${event.time}`) ?? {};
    const value: Record<string, unknown> = { kind: event.kind, size: event.size };
    if (typeof a[ATTR_ARTIFACT_SHA256] === 'string') value.sha256 = a[ATTR_ARTIFACT_SHA256];
    if (typeof a[ATTR_ARTIFACT_ERROR] === 'string') value.error = a[ATTR_ARTIFACT_ERROR];
    value.source = typeof a[ATTR_ARTIFACT_PATH] === 'string' ? a[ATTR_ARTIFACT_PATH] : event.path;
    return { type: 'tags', runId: event.runId, time: event.time, tags: { [artifactTagKey(event.name)]: JSON.stringify(value) } };
  });
  count(n);
  return out;
}

/** `runtel.artifact.<name>`, with the name made safe for MLflow tag keys (letters, digits, `_-. /`, no `.`/`..` segments, ≤ 250). */
export function artifactTagKey(name: string): string {
  const segments = name
    .replace(/[^A-Za-z0-9_\-./ ]/g, '_')
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..');
  return `${ARTIFACT_TAG_PREFIX}${segments.join('/') || '_'}`.slice(0, 250).replace(/[/.]+$/, '');
}
