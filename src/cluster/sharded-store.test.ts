import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Errors, TrackerError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { shardOf } from '../core/shard.ts';
import { AnnounceEvent, type AnnounceRequest, type SwarmStats } from '../core/types.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { Policy } from '../policy/policy.ts';
import { MemorySwarmStore } from '../store/memory/memory-store.ts';
import { requestContext } from '../tracker/service.ts';
import { ANNOUNCE_BYTES, type FrameWriter, MessageType, writeText } from './messages.ts';
import { type RecheckPolicy, ShardedSwarmStore } from './sharded-store.ts';

const logger = createLogger('silent');

/** A new leecher's first announce from 10.0.0.1:`port`. */
function started(infoHash: Uint8Array, port: number): AnnounceRequest {
  return {
    infoHash,
    peerId: randomBytes(20),
    family: 4,
    ip: new Uint8Array([10, 0, 0, 1]),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 100,
    event: AnnounceEvent.started,
    numWant: 50,
    wantPeerIds: false,
  };
}

/** Two workers' stores on one bus, in this process (not started). */
function twoWorkers(): ShardedSwarmStore[] {
  const clusterId = randomBytes(4).toString('hex');
  const token = randomBytes(32);
  return [0, 1].map(
    (index) =>
      new ShardedSwarmStore({
        local: new MemorySwarmStore({ peerTimeout: 1800 }),
        clusterId,
        token,
        index,
        count: 2,
        logger,
      }),
  );
}

test('an announce frame shorter than an announce is refused by its owner, not read on into the next frame', async () => {
  const stores = twoWorkers();
  for (const s of stores) await s.start();
  try {
    // Worker 0 sends worker 1 a 10-byte announce body, and in the same write a long one-way
    // frame after it: reading an announce's 90 bytes from the first frame reads the second's.
    const answer = await stores[0].bus.request(
      1,
      (w: FrameWriter, id: number) => {
        const start = w.begin(MessageType.announce, id, 10);
        w.buf.fill(0, w.len, w.len + 10);
        w.len += 10;
        w.end(start);
        writeText(w, MessageType.rtcDeliver, 0, 'x'.repeat(ANNOUNCE_BYTES * 2));
      },
      (_body: Buffer, _at: number, type: MessageType) => type,
    );
    assert.equal(answer, MessageType.failure, 'the short frame got a failure, not an announce answer');
    // The owner's swarms are untouched.
    assert.equal((stores[1].local.stats() as SwarmStats).peers, 0);
    // A scrape frame that counts more hashes than it carries.
    const scrape = await stores[0].bus.request(
      1,
      (w: FrameWriter, id: number) => {
        const start = w.begin(MessageType.scrape, id, 6 + 20);
        w.buf.writeUInt32BE(0, w.len);
        w.buf.writeUInt16BE(3, w.len + 4);
        w.buf.fill(1, w.len + 6, w.len + 26);
        w.len += 26;
        w.end(start);
        writeText(w, MessageType.rtcDeliver, 0, 'x'.repeat(100));
      },
      (_body: Buffer, _at: number, type: MessageType) => type,
    );
    assert.equal(scrape, MessageType.failure, 'the short scrape frame got a failure');
  } finally {
    for (const s of stores) await s.close();
  }
});

test('the owner judges again an announce judged by an older policy snapshot: a lagging worker cannot put back a peer a change took out', async () => {
  const stores = twoWorkers();
  // Worker 0 still judges by revision 4; worker 1, the owner, has loaded revision 5, in which the
  // hash is denied. `asked` counts the owner's second judgements.
  const revisions = [4, 5];
  let asked = 0;
  for (const [i, s] of stores.entries())
    s.recheckWith({
      revision: () => revisions[i],
      recheck: () => {
        asked++;
        return Errors.infoHashDenied;
      },
      keyPrint: () => 0,
    });
  for (const s of stores) await s.start();
  try {
    let infoHash = randomBytes(20);
    while (shardOf(infoHash, 2) !== 1) infoHash = randomBytes(20);
    const announce = (port: number) =>
      stores[0].dispatch(started(infoHash, port), requestContext('udp', null), 1_900_000_000);
    assert.equal(await announce(6881), Errors.infoHashDenied, 'the newer owner refused it');
    assert.equal(asked, 1);
    assert.equal((stores[1].local.stats() as SwarmStats).peers, 0, 'the swarm was left untouched');
    // Judged by the same snapshot as the owner's (or a newer one): the sender's verdict stands.
    revisions[0] = 5;
    const r = await announce(6882);
    assert.ok(!(r instanceof TrackerError), 'admitted');
    revisions[1] = 3;
    revisions[0] = 4;
    assert.ok(!((await announce(6883)) instanceof TrackerError), 'admitted by an owner that is behind');
    assert.equal(asked, 1, 'the owner judged again only when its snapshot was newer');
    assert.equal((stores[1].local.stats() as SwarmStats).peers, 2);
  } finally {
    for (const s of stores) await s.close();
  }
});

test('a passkey reset committed while the sender loads its snapshot: the owner admits the new key the sender accepted, and still refuses the old one', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  const stores = twoWorkers();
  try {
    const reg = new Registry(db);
    let infoHash = randomBytes(20);
    while (shardOf(infoHash, 2) !== 1) infoHash = randomBytes(20);
    const hex = infoHash.toString('hex');
    await reg.addTorrent({
      infoHash: hex,
      infoHashV2: null,
      name: 't',
      size: 1,
      fileCount: 1,
      restricted: false,
    });
    const ann = await reg.addMember({ username: 'ann' });
    const [sender, owner, lagging] = [0, 1, 2].map(() => new Policy({ mode: 'private', logger }));
    for (const p of [sender, owner, lagging]) await p.connect(reg);
    // The sender reloads (something else changed); the reset of ann's key commits after it read
    // the revision and before it read the members: its snapshot holds the new key under the
    // revision before the reset.
    await reg.addToList('deny', '9'.repeat(40));
    const revision = reg.revision.bind(reg);
    let reads = 0;
    let fresh = '';
    reg.revision = async () => {
      const r = await revision();
      if (++reads === 2) {
        reg.revision = revision;
        fresh = (await reg.resetPasskey(ann.id)).passkey;
      }
      return r;
    };
    await sender.refresh();
    assert.notEqual(fresh, '');
    assert.ok(sender.snapshot.members.has(fresh), 'the sender holds the new key');
    await owner.refresh();
    assert.ok(owner.snapshot.revision > sender.snapshot.revision, 'the owner is newer: it judges again');
    const judge = (p: Policy): RecheckPolicy => ({
      revision: () => p.snapshot.revision,
      recheck: (req, memberId, torrentId, keyPrint) => p.recheck(req, memberId, torrentId, keyPrint),
      keyPrint: (member) => p.keyPrint(member),
    });
    stores[1].recheckWith(judge(owner));
    for (const s of stores) await s.start();
    const announce = (p: Policy, key: string, port: number) => {
      stores[0].recheckWith(judge(p));
      const ctx = requestContext('http', null);
      ctx.member = p.snapshot.members.get(key) ?? null;
      ctx.torrent = p.snapshot.torrents.get(infoHash) ?? null;
      assert.ok(ctx.member !== null && ctx.torrent !== null);
      return stores[0].dispatch(started(infoHash, port), ctx, 1_900_000_000);
    };
    const admitted = await announce(sender, fresh, 6881);
    assert.ok(!(admitted instanceof TrackerError), `the new key is admitted: ${String(admitted)}`);
    // A worker still on the snapshot before the reset admitted the old key: the owner refuses it.
    assert.equal(await announce(lagging, ann.passkey, 6882), Errors.passkeyUnknown);
    assert.equal((stores[1].local.stats() as SwarmStats).peers, 1);
  } finally {
    for (const s of stores) await s.close();
    await db.close();
  }
});
