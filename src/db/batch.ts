import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Dialect } from './connect.ts';

/**
 * Conditions that match many rows by key in one statement, for the schedulers' slices (a slice's
 * changes of one kind in one UPDATE instead of one UPDATE per change). On PostgreSQL every
 * statement is a round trip: one per change cost 9,000 class promotions 50 s of wall time
 * (docs/benchmarks.md). There the keys go as one array parameter per column (`unnest`, as the
 * accounting flush's statements: src/accounting/flush-writer.ts), so the text and its plan are
 * the same for any number of rows; on SQLite, with no round trip to save, as a list of
 * placeholders (one statement instead of one per change saves the query builder's work per row).
 */

/** A PostgreSQL array literal of integers (`{1,2,3}`), sent as one text parameter. */
export function pgIntArray(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

/** `column` is one of `ids`. */
export function inIds(dialect: Dialect, column: string, ids: readonly number[]): RawBuilder<SqlBool> {
  return dialect === 'postgres'
    ? sql<SqlBool>`${sql.ref(column)} = any(${pgIntArray(ids)}::integer[])`
    : sql<SqlBool>`${sql.ref(column)} in (${sql.join(ids)})`;
}

/** (`a`, `b`) is one of `pairs`. */
export function inPairs(
  dialect: Dialect,
  a: string,
  b: string,
  pairs: readonly (readonly [number, number])[],
): RawBuilder<SqlBool> {
  if (dialect === 'postgres')
    return sql<SqlBool>`(${sql.ref(a)}, ${sql.ref(b)}) in (select * from unnest(${pgIntArray(
      pairs.map((p) => p[0]),
    )}::integer[], ${pgIntArray(pairs.map((p) => p[1]))}::integer[]))`;
  return sql<SqlBool>`(${sql.ref(a)}, ${sql.ref(b)}) in (values ${sql.join(pairs.map(([x, y]) => sql`(${x}, ${y})`))})`;
}

/** Changes by kind (`kindOf`), in the order each kind first appears: a statement per kind. */
export function byKind<C, K>(changes: readonly C[], kindOf: (c: C) => K): Map<K, C[]> {
  const out = new Map<K, C[]>();
  for (const c of changes) {
    const k = kindOf(c);
    const group = out.get(k);
    if (group === undefined) out.set(k, [c]);
    else group.push(c);
  }
  return out;
}

/**
 * Rows of integers as a table `alias`(`columns`) for a FROM clause (an UPDATE ... FROM that sets
 * each row its own value): on PostgreSQL `unnest` of one array parameter per column (`types`: the
 * columns' SQL types), on SQLite a VALUES list (its columns named by a SELECT).
 */
export function valuesTable(
  dialect: Dialect,
  alias: string,
  columns: readonly (readonly [name: string, pgType: 'integer' | 'bigint'])[],
  rows: readonly (readonly number[])[],
): RawBuilder<unknown> {
  const names = sql.raw(columns.map(([name]) => name).join(', '));
  if (dialect === 'postgres') {
    const arrays = columns.map(
      ([, type], c) => sql`${pgIntArray(rows.map((r) => r[c]))}::${sql.raw(type)}[]`,
    );
    return sql`unnest(${sql.join(arrays)}) as ${sql.raw(alias)}(${names})`;
  }
  const named = sql.raw(columns.map(([name], c) => `column${c + 1} as ${name}`).join(', '));
  const values = sql.join(rows.map((r) => sql`(${sql.join(r)})`));
  return sql`(select ${named} from (values ${values})) as ${sql.raw(alias)}`;
}

/**
 * `column` in a condition beside a slice's keys, kept from choosing the statement's index: on
 * SQLite, with no statistics, the planner took an index on `status` (or `hnr_state`) over the
 * keys' lookups and read every active hit-and-run (every unjudged snatch) at each slice; a unary
 * `+` is SQLite's own way to say "not through an index". PostgreSQL plans from its statistics
 * (and has no unary `+` on text): the column as it is.
 */
export function unindexed<T>(dialect: Dialect, column: string): RawBuilder<T> {
  return dialect === 'postgres' ? sql<T>`${sql.ref(column)}` : sql<T>`+${sql.ref(column)}`;
}
