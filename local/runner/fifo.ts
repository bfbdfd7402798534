/**
 * A FIFO over an array with a moving head, compacted now and then (no O(n) shifts). A shifted
 * slot is cleared at once: until the next compaction (past 1,024 items) it would otherwise keep
 * its item, and a record's bytes with it, alive.
 */
export class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(offset = 0): T | undefined {
    return this.items[this.head + offset];
  }
  shift(): T | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
