// The bridge's bearer token, shared by its receivers: compared as SHA-256 digests, so in constant
// time whatever the length.

import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

export class BearerToken {
  private readonly _digest: Buffer | undefined;

  /** Undefined: no token is required. */
  constructor(token: string | undefined) {
    this._digest = token === undefined ? undefined : digest(token);
  }

  get required(): boolean {
    return this._digest !== undefined;
  }

  /** Whether an `Authorization` header (or gRPC `authorization` metadata) carries the token. */
  accepts(header: string | undefined): boolean {
    if (this._digest === undefined) return true;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    return match !== null && timingSafeEqual(digest(match[1]!), this._digest);
  }
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
