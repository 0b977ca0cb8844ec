import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { Policy } from './policy.ts';

test('policy reloads coalesce: one at a time, calls during a load share one more, and each caller sees its change', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const m = await reg.addMember({ username: 'hammer' });
    const policy = new Policy({ mode: 'private', logger: createLogger('silent') });
    await policy.connect(reg);
    const loads0 = policy.loads;
    await reg.resetPasskey(m.id);
    // 25 calls at once, then a change while the first load runs, then 25 more calls.
    const early = Array.from({ length: 25 }, () => policy.refresh());
    const changed = await reg.resetPasskey(m.id);
    const late = Array.from({ length: 25 }, () => policy.refresh());
    const results = await Promise.all([...early, ...late]);
    assert.equal(policy.loads - loads0, 2, 'the first load, and exactly one more for every call during it');
    assert.equal(
      results.filter((r) => r).length,
      50,
      'every caller waited for a load that saw a new revision',
    );
    assert.ok(policy.snapshot.members.has(changed.passkey), 'the last change is in the snapshot');
    assert.equal(await policy.refresh(), false, 'nothing changed since: no load');
    assert.equal(policy.loads - loads0, 2);
  } finally {
    await db.close();
  }
});
