// Entering a run's OpenTelemetry context for the rest of an async context: what makes spans created
// after `startRun()` (auto-instrumented HTTP calls, say) children of the run's span.
//
// The JS API 1.9 scopes a context to a callback only (`context.with`). Its successor adds
// `context.attach(ctx)` (a token whose dispose() restores the previous context); the
// AsyncLocalStorageContextManager of @opentelemetry/context-async-hooks 2.x, which NodeSDK installs,
// has it already. Older versions of that manager keep their AsyncLocalStorage in `_asyncLocalStorage`,
// entered the same way. With any other context manager the run's span is current inside `withRun` only.

import { context } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import { AsyncLocalStorage } from 'node:async_hooks';

interface Token {
  dispose(): void;
}

interface Attachable {
  attach?(ctx: Context): Token;
  _asyncLocalStorage?: unknown;
}

let warned = false;

function attach(ctx: Context): Token | undefined {
  const api = context as unknown as { attach?(ctx: Context): Token; _getContextManager?(): unknown };
  if (typeof api.attach === 'function') return api.attach(ctx);
  const manager = api._getContextManager?.() as Attachable | undefined;
  if (typeof manager?.attach === 'function') return manager.attach(ctx);
  const storage = manager?._asyncLocalStorage;
  if (storage instanceof AsyncLocalStorage) {
    const previous = context.active();
    storage.enterWith(ctx);
    return { dispose: () => storage.enterWith(previous) };
  }
  if (!warned) {
    warned = true;
    const name = manager?.constructor?.name ?? 'unknown';
    process.stderr.write(
      `runtel: otel: the OpenTelemetry context manager (${name}) cannot make a run's span current after startRun(); ` +
        'spans created there start their own trace. Use withRun(), or the AsyncLocalStorageContextManager NodeSDK installs\n',
    );
  }
  return undefined;
}

/**
 * Enters the context `runIn` gives its callback (a run's span) for the rest of the calling async
 * context. Returns how to leave it again: that restores the previous context where this one is still
 * active, and does nothing elsewhere. Undefined when there is nothing to enter (no OTel backend, or no
 * context manager at all) or it cannot be entered.
 */
export function enterBackendContext(runIn: (fn: () => Context) => Context): (() => void) | undefined {
  const before = context.active();
  const inside = runIn(() => context.active());
  if (inside === before) return undefined;
  const token = attach(inside);
  if (token === undefined) return undefined;
  return () => {
    if (context.active() === inside) token.dispose();
  };
}
