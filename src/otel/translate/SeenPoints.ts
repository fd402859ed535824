// The metric points a run's records carried so far, as (key, step, timestamp), so that a resent
// record adds nothing. Maps by key, then by step: no string is built per point (the key is the
// decoder's interned string), and a point costs one map entry.

export class SeenPoints {
  private _byKey = new Map<string, Map<number, number | number[]>>();
  /** Points held. */
  size = 0;

  has(key: string, step: number, time: number): boolean {
    const at = this._byKey.get(key)?.get(step);
    return at === time || (Array.isArray(at) && at.includes(time));
  }

  /** Adds a point that `has` said is new. */
  add(key: string, step: number, time: number): void {
    let steps = this._byKey.get(key);
    if (steps === undefined) this._byKey.set(key, (steps = new Map<number, number | number[]>()));
    const at = steps.get(step);
    // Usually one time per step; the same step logged again at another time is another point.
    if (at === undefined) steps.set(step, time);
    else if (Array.isArray(at)) at.push(time);
    else steps.set(step, [at, time]);
    this.size++;
  }

  clear(): void {
    this._byKey = new Map();
    this.size = 0;
  }
}
