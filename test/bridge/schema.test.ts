// The generated OTLP schema (src/generated/otlp/descriptor.ts) is what scripts/gen-otlp-descriptor.py
// writes from the opentelemetry-proto version pinned in examples/python/requirements.txt: this fails
// when either moved without the other.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OTLP_DESCRIPTOR_METADATA } from '../../src/generated/otlp/descriptor.js';
import { cacheDir } from '../services/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function pinned(name: string): string {
  const line = readFileSync(join(root, 'examples/python/requirements.txt'), 'utf8').split('\n').find((l) => l.startsWith(`${name}==`));
  if (line === undefined) throw new Error(`${name} is not pinned in examples/python/requirements.txt`);
  return line.split('==')[1]!.trim();
}

describe('the generated OTLP schema', () => {
  it('is generated from the pinned opentelemetry-proto and is not stale', async () => {
    expect(OTLP_DESCRIPTOR_METADATA.opentelemetryProto).toBe(pinned('opentelemetry-proto'));
    expect(OTLP_DESCRIPTOR_METADATA.googleapisCommonProtos).toBe(pinned('googleapis-common-protos'));
    // The example's venv (scripts/provision-example.sh) holds exactly those pins.
    const python = join(cacheDir(), 'venv-example', 'bin', 'python');
    const out = join(mkdtempSync(join(tmpdir(), 'runtel-schema-')), 'descriptor.ts');
    await new Promise<void>((resolve, reject) => {
      execFile(python, ['scripts/gen-otlp-descriptor.py', '--out', out], { cwd: root }, (error, _stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve()));
    });
    const committed = readFileSync(join(root, 'src/generated/otlp/descriptor.ts'), 'utf8');
    expect(readFileSync(out, 'utf8') === committed, 'src/generated/otlp/descriptor.ts is stale: run scripts/gen-otlp-descriptor.py').toBe(true);
  }, 60_000);
});
