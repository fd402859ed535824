// The search space: which trials a search runs, in which order. A grid is the cartesian product of
// its values; random trials are drawn from a seeded PRNG, so the same seed gives the same trials.

/** A numeric range sampled uniformly (or log-uniformly), optionally as integers. */
export interface RangeSpec {
  min: number;
  max: number;
  /** Sample uniformly in log space (needs `min > 0`). */
  log?: boolean;
  /** Draw integers in `[ceil(min), floor(max)]`. */
  integer?: boolean;
}

/** An array (uniform choice among its items) or a numeric range. */
export type RandomSpaceEntry = readonly unknown[] | RangeSpec;

export interface RandomSearch {
  /** Number of random trials: a positive integer. */
  n: number;
  /** Seed of the PRNG: the same seed and space give the same trials. */
  seed: number;
  space: Record<string, RandomSpaceEntry>;
}

export interface SearchSpec {
  /** Every combination, in key order, the last key varying fastest. */
  grid?: Record<string, readonly unknown[]>;
  /** `n` trials sampled from `space`; run after the grid trials when both are given. */
  random?: RandomSearch;
  /** Trials in flight at once. Default 1. */
  concurrency?: number;
}

type GridParams<G> = { [K in keyof G]: G[K] extends readonly (infer V)[] ? V : unknown };
type RandomParams<R> = { [K in keyof R]: R[K] extends readonly (infer V)[] ? V : number };
// `unknown extends X` catches a property the spec does not have (inferred as unknown).
type GridPart<S> = S extends { grid?: infer G } ? (unknown extends G ? never : [NonNullable<G>] extends [never] ? never : GridParams<NonNullable<G>>) : never;
type RandomPart<S> = S extends { random?: infer Rs }
  ? unknown extends Rs
    ? never
    : NonNullable<Rs> extends { space: infer R }
      ? RandomParams<R>
      : never
  : never;
type EmptyPart<S> = S extends { grid: unknown } | { random: unknown } ? never : Record<string, never>;

/** The params a trial receives for a search spec (grid trials and random trials may differ). */
export type TrialParams<S extends SearchSpec = SearchSpec> = GridPart<S> | RandomPart<S> | EmptyPart<S>;

/** The trials' params in run order: the grid's product, then the random samples; `[{}]` when neither is given. */
export function planTrials(search: SearchSpec): Array<Record<string, unknown>> {
  if (typeof search !== 'object' || search === null) throw new TypeError('experiment.run needs a search spec object ({ grid?, random?, concurrency? })');
  const { grid, random, concurrency } = search;
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(`concurrency must be a positive integer, got ${String(concurrency)}`);
  }
  const plan: Array<Record<string, unknown>> = [];
  if (grid !== undefined) plan.push(...gridTrials(grid));
  if (random !== undefined) plan.push(...randomTrials(random));
  if (grid === undefined && random === undefined) plan.push({});
  return plan;
}

function gridTrials(grid: Record<string, readonly unknown[]>): Array<Record<string, unknown>> {
  if (typeof grid !== 'object' || grid === null || Array.isArray(grid)) throw new TypeError('grid must be an object of arrays');
  const keys = Object.keys(grid);
  if (keys.length === 0) throw new TypeError('grid must name at least one parameter');
  for (const key of keys) {
    const values = grid[key];
    if (!Array.isArray(values)) throw new TypeError(`grid.${key} must be an array of values`);
    if (values.length === 0) throw new RangeError(`grid.${key} is an empty array: give at least one value`);
  }
  let combos: Array<Record<string, unknown>> = [{}];
  for (const key of keys) {
    const next: Array<Record<string, unknown>> = [];
    for (const combo of combos) for (const value of grid[key]!) next.push({ ...combo, [key]: value });
    combos = next;
  }
  return combos;
}

function randomTrials(random: RandomSearch): Array<Record<string, unknown>> {
  if (typeof random !== 'object' || random === null) throw new TypeError('random must be { n, seed, space }');
  const { n, seed, space } = random;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`random.n must be a positive integer, got ${String(n)}`);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`random.seed must be an integer, got ${String(seed)}`);
  if (typeof space !== 'object' || space === null || Array.isArray(space)) throw new TypeError('random.space must be an object');
  const keys = Object.keys(space);
  if (keys.length === 0) throw new TypeError('random.space must name at least one parameter');
  for (const key of keys) checkSpaceEntry(key, space[key]);
  const next = mulberry32(seed);
  const trials: Array<Record<string, unknown>> = [];
  for (let i = 0; i < n; i++) {
    const params: Record<string, unknown> = {};
    for (const key of keys) params[key] = sample(space[key]!, next);
    trials.push(params);
  }
  return trials;
}

function checkSpaceEntry(key: string, entry: unknown): void {
  if (Array.isArray(entry)) {
    if (entry.length === 0) throw new RangeError(`random.space.${key} is an empty array: give at least one value`);
    return;
  }
  if (typeof entry !== 'object' || entry === null) {
    throw new TypeError(`random.space.${key} must be an array of choices or { min, max, log?, integer? }`);
  }
  const { min, max, log, integer } = entry as Partial<RangeSpec>;
  if (typeof min !== 'number' || !Number.isFinite(min) || typeof max !== 'number' || !Number.isFinite(max)) {
    throw new TypeError(`random.space.${key} needs finite numbers min and max`);
  }
  if (min > max) throw new RangeError(`random.space.${key}: min (${min}) is greater than max (${max})`);
  if (log === true && min <= 0) throw new RangeError(`random.space.${key}: a log range needs min > 0, got ${min}`);
  if (integer === true && Math.ceil(min) > Math.floor(max)) {
    throw new RangeError(`random.space.${key}: no integer between min (${min}) and max (${max})`);
  }
}

function sample(entry: RandomSpaceEntry, next: () => number): unknown {
  if (isChoices(entry)) return entry[Math.floor(next() * entry.length)];
  const { min, max, log = false, integer = false } = entry;
  const u = next();
  if (!integer) return log ? Math.exp(Math.log(min) + u * (Math.log(max) - Math.log(min))) : min + u * (max - min);
  const lo = Math.ceil(min);
  const hi = Math.floor(max);
  if (!log) return lo + Math.floor(u * (hi - lo + 1));
  // Log-uniform over [lo - 0.5, hi + 0.5) (clamped above 0), rounded: every integer is reachable.
  const a = Math.max(lo - 0.5, lo / 2);
  const b = hi + 0.5;
  return Math.min(hi, Math.max(lo, Math.round(Math.exp(Math.log(a) + u * (Math.log(b) - Math.log(a))))));
}

function isChoices(entry: RandomSpaceEntry): entry is readonly unknown[] {
  return Array.isArray(entry);
}

/** mulberry32: a tiny 32-bit PRNG; uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The parent run's `search.*` params. */
export function describeSearch(search: SearchSpec, concurrency: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (search.grid !== undefined) out.grid = { ...search.grid };
  if (search.random !== undefined) {
    const space: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(search.random.space)) space[key] = isChoices(entry) ? entry : { ...entry };
    out.random = { n: search.random.n, seed: search.random.seed, space };
  }
  out.concurrency = concurrency;
  return out;
}
