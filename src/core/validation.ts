// Programmer errors: checked at the call site, thrown with the key and the rule.
// The rules are MLflow's (the strictest backend), so whatever the core accepts every backend accepts.
// MLflow's key pattern is Python's `^[/\w.\- :]*$`, and Python's `\w` is Unicode: letters and digits
// of every script (categories L and N) and `_`; test/core/keys-mlflow.test.ts checks every code point.

export const MAX_KEY_LENGTH = 250;
export const MAX_PARAM_VALUE_LENGTH = 6000;
export const MAX_TAG_VALUE_LENGTH = 8000;

const KEY_PATTERN = /^[\p{L}\p{N}_\-. /:]+$/u;
const KEY_RULE = `keys are 1-${MAX_KEY_LENGTH} characters of letters and digits (any script, as MLflow), '_', '-', '.', ' ', '/' and ':'`;

// Keys repeat every step: remember the valid ones so the hot path pays for a Set lookup only.
const validKeys = new Set<string>();
const VALID_KEY_CACHE_LIMIT = 100_000;

/** Throws a TypeError naming the key and the rule when `key` is not a valid metric, param or tag key. */
export function validateKey(key: string, what: string): void {
  if (validKeys.has(key)) return;
  // Characters as MLflow counts them: code points (a UTF-16 length over the limit may still fit).
  if (key.length === 0 || (key.length > MAX_KEY_LENGTH && [...key].length > MAX_KEY_LENGTH) || !KEY_PATTERN.test(key)) {
    throw new TypeError(`invalid ${what} key ${JSON.stringify(key)}: ${KEY_RULE}`);
  }
  if (!isUniquePath(key)) {
    throw new TypeError(
      `invalid ${what} key ${JSON.stringify(key)}: keys may be stored as file paths, so they must not contain ` +
        `empty, '.' or '..' segments, nor start or end with '/'`,
    );
  }
  if (validKeys.size < VALID_KEY_CACHE_LIMIT) validKeys.add(key);
}

// MLflow stores metrics as files in some stores: a key must not resolve to another path.
function isUniquePath(key: string): boolean {
  if (key.startsWith('/') || key.endsWith('/')) return false;
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return false;
  }
  return true;
}

/** NaN and ±Infinity are valid metric values; anything that is not a number is a TypeError. */
export function validateMetricValue(key: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    const got = value === null ? 'null' : typeof value;
    throw new TypeError(`metric ${JSON.stringify(key)} must be a number (NaN and ±Infinity allowed), got ${got}`);
  }
}

export function validateStep(step: unknown): number {
  if (typeof step !== 'number') throw new TypeError(`step must be a number, got ${typeof step}`);
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(`step must be a non-negative safe integer, got ${step}`);
  }
  return step;
}

/**
 * Timestamps in [1e8, 1e11) are seconds by mistake: as seconds they are 1973-03-03 to 5138, as
 * milliseconds 1970-01-02 to 1973-03-03, when nobody logged training runs.
 */
export const SECONDS_LIKE_TIMESTAMPS = { min: 1e8, max: 1e11 } as const;

/** Milliseconds since the epoch: finite, not before 1970, and not a count of seconds. */
export function validateTimestamp(timestamp: unknown): number {
  const millis = timestamp instanceof Date ? timestamp.getTime() : timestamp;
  if (typeof millis !== 'number') throw new TypeError(`timestamp must be a number of milliseconds or a Date, got ${typeof millis}`);
  if (!Number.isFinite(millis) || millis < 0) {
    throw new RangeError(`timestamp must be finite milliseconds since 1970-01-01, got ${millis}`);
  }
  if (millis >= SECONDS_LIKE_TIMESTAMPS.min && millis < SECONDS_LIKE_TIMESTAMPS.max) {
    throw new RangeError(
      `timestamp ${millis} looks like seconds since 1970 (as milliseconds it is ${new Date(millis).toISOString()}): ` +
        'pass milliseconds, e.g. Date.now() rather than Date.now() / 1000, or seconds * 1000',
    );
  }
  return millis;
}

export function validateTagValue(key: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`tag ${JSON.stringify(key)} must be a string, got ${typeof value}`);
  if (value.length > MAX_TAG_VALUE_LENGTH) {
    throw new RangeError(`tag ${JSON.stringify(key)} is ${value.length} characters; the limit is ${MAX_TAG_VALUE_LENGTH}`);
  }
  return value;
}

export function validateName(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`${what} must be a non-empty string`);
  return value;
}
