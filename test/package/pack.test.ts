// What `npm pack` publishes (issue 14, item 13): every file the package points at is in it — the
// exports and the bin, and the sources of any source map (the maps pointed at ../src, which the
// package does not contain; the build makes no maps now).

import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { REPO } from './consumer.js';

interface PackInfo {
  files: Array<{ path: string }>;
}

describe('the published package', () => {
  const info = (JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' })) as PackInfo[])[0]!;
  const files = new Set(info.files.map((f) => f.path));

  it('has every file a source map or a sourceMappingURL comment names', () => {
    const missing: string[] = [];
    for (const path of files) {
      if (path.endsWith('.map')) {
        const map = JSON.parse(readFileSync(join(REPO, path), 'utf8')) as { sourceRoot?: string; sources: string[] };
        for (const source of map.sources) {
          const target = normalize(join(dirname(path), map.sourceRoot ?? '', source));
          if (!files.has(target)) missing.push(`${path} → ${target}`);
        }
      } else if (/\.(c|m)?js$|\.d\.(c|m)?ts$/.test(path)) {
        const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(REPO, path), 'utf8'))?.[1];
        if (url !== undefined && !files.has(normalize(join(dirname(path), url)))) missing.push(`${path} → ${url}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('has the files its exports and bin name', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>>; bin: Record<string, string> };
    const targets = [...Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e))), ...Object.values(pkg.bin)];
    expect(targets.filter((t) => !files.has(normalize(t)))).toEqual([]);
  });
});
