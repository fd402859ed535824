// Reads a request body within limits: the bytes on the wire, the bytes after decompression (a gzip
// bomb stops at the cap, streamed 16 KiB at a time, never inflated whole) and a budget shared by all
// requests in flight, so the memory held by bodies stays bounded whatever the clients send.

import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate } from 'node:zlib';
import type { Gunzip, Inflate } from 'node:zlib';

/** Why a body was not read: the HTTP status to answer, and a message for the response. */
export class BodyError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'BodyError';
    this.status = status;
  }
}

export interface BodyLimits {
  /** Bytes on the wire (413 above). */
  maxBodyBytes: number;
  /** Bytes after decompression (413 above). */
  maxDecompressedBytes: number;
}

/** Bytes held by bodies being read, across requests; past `limit`, new bytes are refused (503). */
export class ByteBudget {
  private _used = 0;

  constructor(readonly limit: number) {}

  get used(): number {
    return this._used;
  }

  take(bytes: number): boolean {
    if (this._used + bytes > this.limit) return false;
    this._used += bytes;
    return true;
  }

  give(bytes: number): void {
    this._used = Math.max(0, this._used - bytes);
  }
}

/** `Content-Encoding` → a decompressor, `null` for identity; undefined when not supported (415). */
export function decompressorFor(header: string | undefined): (() => Gunzip | Inflate) | null | undefined {
  const encoding = (header ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return null;
  if (encoding === 'gzip' || encoding === 'x-gzip') return () => createGunzip();
  if (encoding === 'deflate') return () => createInflate();
  return undefined;
}

/**
 * The whole (decompressed) body. Rejects with BodyError: 413 over a limit, 503 when the shared
 * budget is spent, 400 for a corrupt compressed stream or an aborted upload. The budget taken is
 * returned with the body (`held`); the caller gives it back when done with the bytes.
 */
export function readBody(
  req: IncomingMessage,
  limits: BodyLimits,
  budget: ByteBudget,
  decompressor: (() => Gunzip | Inflate) | null,
): Promise<{ body: Buffer; held: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let held = 0;
    let settled = false;
    const inflater = decompressor?.();

    const take = (bytes: number): boolean => {
      if (!budget.take(bytes)) return false;
      held += bytes;
      return true;
    };
    const fail = (error: BodyError): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      // The rest of the body is discarded as it arrives.
      req.resume();
      if (inflater !== undefined) {
        inflater.removeAllListeners('data');
        inflater.on('error', () => undefined);
        inflater.destroy();
      }
      chunks.length = 0;
      budget.give(held);
      reject(error);
    };
    const keep = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limits.maxDecompressedBytes) return fail(new BodyError(413, `body is larger than ${limits.maxDecompressedBytes} bytes decompressed`));
      if (inflater !== undefined && !take(chunk.length)) return fail(new BodyError(503, 'the bridge is busy reading other requests'));
      chunks.push(chunk);
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      if (inflater !== undefined) {
        // The compressed bytes are no longer needed.
        budget.give(wire);
        held -= wire;
      }
      resolve({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), held });
    };
    function onData(chunk: Buffer): void {
      if (settled) return;
      wire += chunk.length;
      if (wire > limits.maxBodyBytes) return fail(new BodyError(413, `body is larger than ${limits.maxBodyBytes} bytes`));
      if (!take(chunk.length)) return fail(new BodyError(503, 'the bridge is busy reading other requests'));
      if (inflater === undefined) {
        keep(chunk);
        return;
      }
      if (!inflater.write(chunk)) {
        req.pause();
        inflater.once('drain', () => {
          if (!settled) req.resume();
        });
      }
    }

    if (inflater !== undefined) {
      inflater.on('data', (chunk: Buffer) => {
        if (!settled) keep(chunk);
      });
      inflater.once('end', finish);
      inflater.once('error', () => fail(new BodyError(400, 'the compressed body is corrupt')));
    }
    req.on('data', onData);
    req.once('end', () => {
      if (settled) return;
      if (inflater !== undefined) inflater.end();
      else finish();
    });
    req.once('error', () => fail(new BodyError(400, 'the upload failed')));
    req.once('close', () => {
      if (!req.complete) fail(new BodyError(400, 'the upload was aborted'));
    });
  });
}
