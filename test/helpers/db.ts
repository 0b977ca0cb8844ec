import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The database engines every database test runs on: embedded SQLite always, and PostgreSQL when
 * HERALD_TEST_PG_URL names a server (scripts/test-all.sh starts one and sets it, with
 * HERALD_TEST_REQUIRE_PG=1 so that a missing server fails the run instead of skipping).
 */
export interface Engine {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty database for one test suite; `drop()` removes it. */
  create(): Promise<{ url: string; drop(): Promise<void> }>;
}

const PG_URL = process.env.HERALD_TEST_PG_URL ?? '';
const REQUIRE_PG = process.env.HERALD_TEST_REQUIRE_PG === '1';

if (!PG_URL) {
  const msg =
    'PostgreSQL tests SKIPPED: HERALD_TEST_PG_URL is not set (bash scripts/test-all.sh starts PostgreSQL and sets it)';
  if (REQUIRE_PG) throw new Error(`${msg}, but HERALD_TEST_REQUIRE_PG=1`);
  process.stderr.write(`\n*** ${msg} ***\n\n`);
}

export const engines: Engine[] = [
  {
    name: 'sqlite',
    async create() {
      return { url: 'sqlite::memory:', drop: async () => {} };
    },
  },
  ...(PG_URL
    ? [
        {
          name: 'postgres' as const,
          async create() {
            const name = `herald_test_${randomBytes(6).toString('hex')}`;
            const admin = new pg.Client({ connectionString: PG_URL });
            await admin.connect();
            await admin.query(`CREATE DATABASE ${name}`);
            await admin.end();
            const u = new URL(PG_URL);
            u.pathname = `/${name}`;
            return {
              url: u.toString(),
              async drop() {
                const c = new pg.Client({ connectionString: PG_URL });
                await c.connect();
                try {
                  // Plain DROP first: PostgreSQL ends an autovacuum worker on the database itself,
                  // where WITH (FORCE) refuses to end a process of another role ("must be a member
                  // of the role whose process is being terminated"). FORCE only for connections a
                  // test left open; a few tries, as a worker may start again meanwhile.
                  for (let i = 0; ; i++) {
                    try {
                      await c.query(`DROP DATABASE IF EXISTS ${name}${i % 2 === 1 ? ' WITH (FORCE)' : ''}`);
                      break;
                    } catch (err) {
                      if (i >= 9) throw err;
                      await new Promise((r) => setTimeout(r, 100));
                    }
                  }
                } finally {
                  await c.end();
                }
              },
            };
          },
        },
      ]
    : []),
];
