// Vitest global setup: every temporary directory the tests and the processes they start make goes
// under one directory of this run (TMPDIR, which os.tmpdir() and mktemp read), removed at the end,
// so a test that keeps its files for inspection does not leave them behind for good.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const root = mkdtempSync(join(tmpdir(), 'rt-'));
  // As /tmp is: PostgreSQL runs as its own user and makes its files under here too.
  chmodSync(root, 0o1777);
  // The workers are forked after this and inherit it.
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(root, { recursive: true, force: true });
  };
}
