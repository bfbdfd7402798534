/**
 * What a thread holds more of in a later V8 heap snapshot than in an earlier one: objects
 * counted and their own sizes summed by kind (constructor name for objects, function name for
 * closures, one row for all strings), the kinds that grew most first. A steady heap shows
 * small differences in both directions; a leak shows one kind growing with the frames.
 *
 *   npx tsx bench/heap-snapshot-diff.ts earlier.heapsnapshot later.heapsnapshot [rows]
 *
 * `npm run soak -- --snapshots DIR` writes the snapshots and prints this for each thread.
 */
import { readFileSync } from 'node:fs';

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Objects and bytes of one kind in one snapshot. */
export interface KindTotals {
  count: number;
  bytes: number;
}

/** Strings and code are many small distinct names: one row each, by type. */
const TYPES_BY_TYPE_ONLY = new Set(['string', 'concatenated string', 'sliced string', 'code', 'number', 'bigint']);

/** Counts and own sizes by kind (`type:name`, or the type alone for strings, code and numbers). */
export function kindTotals(snapshot: HeapSnapshotFile): Map<string, KindTotals> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const totals = new Map<string, KindTotals>();
  const nodes = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt] ?? 0] ?? 'unknown';
    const kind = TYPES_BY_TYPE_ONLY.has(type) ? `(${type})` : `${type}:${snapshot.strings[nodes[i + nameAt] ?? 0] ?? ''}`;
    const size = nodes[i + sizeAt] ?? 0;
    const row = totals.get(kind);
    if (row) {
      row.count += 1;
      row.bytes += size;
    } else totals.set(kind, { count: 1, bytes: size });
  }
  return totals;
}

export interface KindGrowth {
  kind: string;
  count: number;
  bytes: number;
  countBefore: number;
  bytesBefore: number;
}

/** Kinds whose own bytes changed between the snapshots, largest growth first. */
export function growthByKind(before: Map<string, KindTotals>, after: Map<string, KindTotals>): KindGrowth[] {
  const kinds = new Set([...before.keys(), ...after.keys()]);
  return [...kinds]
    .map((kind) => {
      const a = before.get(kind) ?? { count: 0, bytes: 0 };
      const b = after.get(kind) ?? { count: 0, bytes: 0 };
      return { kind, count: b.count - a.count, bytes: b.bytes - a.bytes, countBefore: a.count, bytesBefore: a.bytes };
    })
    .filter((g) => g.bytes !== 0 || g.count !== 0)
    .sort((x, y) => y.bytes - x.bytes);
}

export function readSnapshot(path: string): Map<string, KindTotals> {
  return kindTotals(JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshotFile);
}

/** The table printed for two snapshots: totals, then the kinds that grew most. */
export function describeGrowth(beforePath: string, afterPath: string, rows = 12): string[] {
  const before = readSnapshot(beforePath);
  const after = readSnapshot(afterPath);
  const sum = (m: Map<string, KindTotals>): number => [...m.values()].reduce((s, t) => s + t.bytes, 0);
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} kB`;
  const growth = growthByKind(before, after);
  return [
    `  heap ${kb(sum(before))} -> ${kb(sum(after))} (${kb(sum(after) - sum(before))})`,
    ...growth
      .slice(0, rows)
      .map(
        (g) =>
          `  ${(g.bytes >= 0 ? '+' : '') + kb(g.bytes)}`.padEnd(16) +
          `${(g.count >= 0 ? '+' : '') + g.count} objects (was ${g.countBefore})`.padEnd(30) +
          g.kind.slice(0, 80),
      ),
  ];
}

if (require.main === module) {
  const [before, after, rows] = process.argv.slice(2);
  if (!before || !after) {
    console.error('usage: npx tsx bench/heap-snapshot-diff.ts earlier.heapsnapshot later.heapsnapshot [rows]');
    process.exit(2);
  }
  for (const line of describeGrowth(before, after, rows ? Number(rows) : 20)) console.log(line);
}
