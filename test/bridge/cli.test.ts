// `runtel bridge serve` refuses configurations it must not run with (run from the sources with tsx;
// the fault test runs it for real).

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

function serve(args: string[], env: Record<string, string>): { code: number | null; stderr: string } {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['MLFLOW_TRACKING_URI', 'WANDB_API_KEY', 'RUNTEL_BRIDGE_TOKEN', 'RUNTEL_BRIDGE_HOST', 'RUNTEL_BRIDGE_PORT', 'RUNTEL_BRIDGE_ALLOW_INSECURE']) delete clean[key];
  const result = spawnSync(process.execPath, ['--import', 'tsx', resolve('src/cli/main.ts'), 'bridge', 'serve', ...args], { encoding: 'utf8', env: { ...clean, ...env }, timeout: 60_000 });
  return { code: result.status, stderr: result.stderr };
}

describe('runtel bridge serve', () => {
  it('needs a target', () => {
    const { code, stderr } = serve(['--port', '0'], {});
    expect(code).toBe(1);
    expect(stderr).toMatch(/MLFLOW_TRACKING_URI.*WANDB_API_KEY/);
  });

  it('refuses a non-loopback address without a token, and never prints the token', () => {
    const refused = serve(['--host', '0.0.0.0', '--port', '0'], { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without a token/);
    const badPort = serve(['--port', '70000'], { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9', RUNTEL_BRIDGE_TOKEN: 'tok-123456789' });
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).not.toContain('tok-123456789');
  });
});
