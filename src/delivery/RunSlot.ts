// What a DeliveryBackend keeps per run besides the target's own state: sequence numbers, the
// creation and finish in progress, requests in flight, and who waits for what to be delivered.

import type { RunFinishedEvent } from '../core/events.js';

export interface Slot<R> {
  readonly id: string;
  state: R;
  /** Seq of the last event accepted. */
  seq: number;
  /** Seq of the run_started whose creation is pending (Infinity once created). */
  creating: number;
  /** The creation, once it may be sent, until it is sent. */
  create: (() => Promise<void>) | undefined;
  /** A creation is queued or waiting for what it needs, not sent yet. */
  createPending: boolean;
  dead: boolean;
  done: boolean;
  finishing: { event: RunFinishedEvent; seq: number } | undefined;
  lastFinish: RunFinishedEvent | undefined;
  inflight: Map<string, number>;
  /** What is in flight, by the smallest seq each carries. */
  works: Set<{ readonly seq: number }>;
  waiters: Array<{ seq: number; resolve: (delivered: boolean) => void }>;
  lastSentAt: number;
  expedite: NodeJS.Timeout | undefined;
}

export function newSlot<R>(id: string, state: R, seq: number): Slot<R> {
  return {
    id, state, seq, creating: Number.POSITIVE_INFINITY, create: undefined, createPending: false, dead: false, done: false, finishing: undefined, lastFinish: undefined,
    inflight: new Map(), works: new Set(), waiters: [], lastSentAt: Date.now(), expedite: undefined,
  };
}

/** The smallest seq of the run not yet delivered (Infinity when everything is), given the smallest the target still queues. */
export function pendingSeq<R>(slot: Slot<R>, queuedSeq: number): number {
  let low = Math.min(slot.creating, slot.finishing?.seq ?? Number.POSITIVE_INFINITY, queuedSeq);
  for (const work of slot.works) if (work.seq < low) low = work.seq;
  return low;
}

/** Resolves the waiters for seqs below `pending` (all of them, as undelivered, when the run is dead). */
export function settleWaiters<R>(slot: Slot<R>, pending: number): void {
  slot.waiters = slot.waiters.filter((w) => {
    if (w.seq >= pending && !slot.dead) return true;
    w.resolve(!slot.dead);
    return false;
  });
  if (slot.waiters.length === 0 && slot.expedite !== undefined) {
    clearTimeout(slot.expedite);
    slot.expedite = undefined;
  }
}
