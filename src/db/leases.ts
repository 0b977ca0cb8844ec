import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Takes (or keeps) the lease of scheduler `name` for `holder` until `until`, in one conditional
 * statement (SQLite and PostgreSQL alike): inserted when there is none; taken over when it has
 * expired (`expires_at` at or before `now`); renewed when `holder` holds it already. Otherwise
 * nothing changes and the answer is false: another instance holds it. Two instances that try at
 * once are ordered by the row (its primary key, then its lock): one gets it.
 */
export async function takeLease(
  k: Kysely<Database>,
  name: string,
  holder: string,
  now: number,
  until: number,
): Promise<boolean> {
  const r = await k
    .insertInto('scheduler_leases')
    .values({ name, holder, expires_at: until })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet((eb) => ({
          holder: eb.ref('excluded.holder'),
          expires_at: eb.ref('excluded.expires_at'),
        }))
        .where((eb) =>
          eb.or([eb('scheduler_leases.expires_at', '<=', now), eb('scheduler_leases.holder', '=', holder)]),
        ),
    )
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Gives the lease up (a graceful stop): only if `holder` holds it. */
export async function releaseLease(k: Kysely<Database>, name: string, holder: string): Promise<void> {
  await k.deleteFrom('scheduler_leases').where('name', '=', name).where('holder', '=', holder).execute();
}
