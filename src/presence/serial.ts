// Work on one key (a presentity, a dialog) done one piece after the other, so that what one piece
// checks still holds when its write is committed and it changes the state.

export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `work` once every piece given before for `key` has settled; resolves as it does. */
  run<T>(key: string, work: () => T | Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(work);
    const settled = next.then(() => {}, () => {});
    this.tails.set(key, settled);
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key);
    });
    return next;
  }
}
