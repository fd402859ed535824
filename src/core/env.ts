// Environment parsing as opentelemetry-js does it: empty means unset; invalid values warn and fall back.

export type RuntelEnvVar =
  | 'RUNTEL_DIR'
  | 'RUNTEL_EXPERIMENT'
  | 'RUNTEL_BACKENDS'
  | 'RUNTEL_FLUSH_TIMEOUT_MILLIS'
  | 'RUNTEL_EXIT_HANDLERS'
  | 'RUNTEL_CONSOLE'
  | 'RUNTEL_CONSOLE_INTERVAL_MILLIS';

export function getStringFromEnv(name: string): string | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.trim();
}

export function getNumberFromEnv(name: string): number | undefined {
  const raw = getStringFromEnv(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) {
    process.stderr.write(`runtel: ignoring ${name}=${JSON.stringify(raw)}: not a number\n`);
    return undefined;
  }
  return value;
}

export function getBooleanFromEnv(name: string): boolean | undefined {
  const raw = getStringFromEnv(name)?.toLowerCase();
  if (raw === undefined) return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  process.stderr.write(`runtel: ignoring ${name}=${JSON.stringify(raw)}: expected true or false\n`);
  return undefined;
}

export function defaultExperiment(): string {
  return getStringFromEnv('RUNTEL_EXPERIMENT') ?? 'default';
}
