// Artifact helpers shared by the core and the backends.

import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import type { ModelInput } from './types.js';

/** Total size in bytes of a file or of every file under a directory. */
export function artifactSize(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.size;
  let total = 0;
  for (const file of listFiles(path)) total += statSync(file).size;
  return total;
}

/** Every regular file under `dir`, recursively, sorted for deterministic uploads. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

/** `file`'s path relative to `root`, with `/` separators. */
export function relativeName(root: string, file: string): string {
  return relative(root, file).split('\\').join('/');
}

/** SHA-256 (hex) of a file, or of a directory as the hash of its sorted `name\0sha256\n` lines. */
export async function sha256Of(path: string): Promise<string> {
  if (!statSync(path).isDirectory()) return hashFile(path);
  const outer = createHash('sha256');
  for (const file of listFiles(path)) outer.update(`${relativeName(path, file)}\0${await hashFile(file)}\n`);
  return outer.digest('hex');
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

export const MODEL_METADATA_FILE = 'runtel-model.json';

/**
 * Writes a model and its metadata into a fresh staging directory and returns its path. Done
 * synchronously so that later changes to the caller's object do not change what was logged.
 */
export function stageModel(runId: string, name: string, model: ModelInput): string {
  const dir = join(mkdtempSync(join(tmpdir(), `runtel-model-${runId.slice(0, 8)}-`)), basename(name));
  mkdirSync(dir, { recursive: true });
  let format: 'json' | 'binary' | 'file' | 'directory';
  let files: string[];
  if (model instanceof Uint8Array) {
    writeFileSync(join(dir, 'model.bin'), model);
    format = 'binary';
    files = ['model.bin'];
  } else if (typeof model === 'string') {
    let stats;
    try {
      stats = statSync(model);
    } catch {
      throw new Error(`model path ${JSON.stringify(model)} does not exist; pass an object or bytes to log data`);
    }
    const target = join(dir, basename(model));
    cpSync(model, target, { recursive: true });
    format = stats.isDirectory() ? 'directory' : 'file';
    files = stats.isDirectory() ? listFiles(target).map((f) => relativeName(dir, f)) : [basename(model)];
  } else {
    let json: string | undefined;
    try {
      json = JSON.stringify(model);
    } catch (error) {
      throw new TypeError(`model ${JSON.stringify(name)} is not JSON-serialisable: ${(error as Error).message}`);
    }
    if (json === undefined) throw new TypeError(`model ${JSON.stringify(name)} is not JSON-serialisable`);
    writeFileSync(join(dir, 'model.json'), json);
    format = 'json';
    files = ['model.json'];
  }
  const metadata = { name, format, files, runId, createdAt: new Date().toISOString(), runtelMetadataVersion: 1 };
  writeFileSync(join(dir, MODEL_METADATA_FILE), JSON.stringify(metadata, null, 2) + '\n');
  return dir;
}
