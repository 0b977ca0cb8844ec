import type { Kysely } from 'kysely';
import type { AccountsHost } from './accounts.ts';
import { byKind, inIds } from './batch.ts';
import { type PublicMember, RegistryError } from './rows.ts';
import type { Database } from './schema.ts';

/**
 * Member classes in the database (issue #16; the rule is src/policy/classes.ts): the scheduler's
 * reads and writes, staff's hand-set class, the history. Changes go through the registry's
 * `change()` (they bump the policy revision). `registry.classes` is this object.
 */
export class MemberClasses {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /** Members by id after `afterId`, with what their class is judged on. */
  async candidates(afterId: number, limit: number) {
    return this.#k
      .selectFrom('members')
      .select(['id', 'created_at', 'uploaded', 'downloaded', 'seed_time', 'class', 'class_locked'])
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /**
   * The scheduler's changes, each with a history row, in one transaction; a change holds only if
   * the member is still in the class it was decided from and staff have not set one by hand.
   * One UPDATE per move (from one class to another) and one INSERT of the history rows, whatever
   * the number of members: each statement is a round trip on PostgreSQL. Returns the reasons of
   * those that took effect.
   */
  async apply(
    changes: { id: number; from: string | null; to: string; reason: 'promoted' | 'demoted' }[],
    at: number,
  ) {
    if (changes.length === 0) return [];
    const dialect = this.#reg.db.dialect;
    return this.#reg.change(async (trx) => {
      const moved: typeof changes = [];
      for (const group of byKind(changes, (c) => JSON.stringify([c.from, c.to])).values()) {
        const { from, to } = group[0];
        const rows = await trx
          .updateTable('members')
          .set({ class: to })
          .where(
            inIds(
              dialect,
              'id',
              group.map((c) => c.id),
            ),
          )
          .where('class_locked', '=', 0)
          .where((eb) => (from === null ? eb('class', 'is', null) : eb('class', '=', from)))
          .returning('id')
          .execute();
        const ids = new Set(rows.map((r) => r.id));
        for (const c of group) if (ids.has(c.id)) moved.push(c);
      }
      if (moved.length > 0)
        await trx
          .insertInto('class_history')
          .values(
            moved.map((c) => ({
              member_id: c.id,
              from_class: c.from,
              to_class: c.to,
              reason: c.reason,
              at,
              by_member: null,
            })),
          )
          .execute();
      return moved.map((c) => c.reason);
    });
  }

  /**
   * Staff set a member's class by hand (the scheduler leaves it until set back to automatic), or
   * back to automatic (`name` null: the scheduler decides at its next run).
   */
  async set(
    m: PublicMember,
    name: string | null,
    opts: { by: number | null; at: number; classes: readonly string[] },
  ): Promise<void> {
    if (opts.classes.length === 0)
      throw new RegistryError('no member classes are configured (member_classes)');
    if (name !== null && !opts.classes.includes(name))
      throw new RegistryError(`class: one of ${opts.classes.join(', ')}, or automatic`);
    await this.#reg.change(async (trx) => {
      if (name === null) {
        await trx.updateTable('members').set({ class_locked: 0 }).where('id', '=', m.id).execute();
        return;
      }
      await trx.updateTable('members').set({ class: name, class_locked: 1 }).where('id', '=', m.id).execute();
      await trx
        .insertInto('class_history')
        .values({
          member_id: m.id,
          from_class: m.class,
          to_class: name,
          reason: 'staff',
          at: opts.at,
          by_member: opts.by,
        })
        .execute();
    });
  }

  /** A member's class changes, newest first. */
  async history(memberId: number, limit = 50) {
    return this.#k
      .selectFrom('class_history')
      .select(['id', 'from_class', 'to_class', 'reason', 'at', 'by_member'])
      .where('member_id', '=', memberId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }

  /** Members per class name (null: the first class). */
  async counts(): Promise<Map<string | null, number>> {
    const rows = await this.#k
      .selectFrom('members')
      .select(['class', (e) => e.fn.countAll().as('n')])
      .groupBy('class')
      .execute();
    return new Map(rows.map((r) => [r.class, Number(r.n)]));
  }
}
