import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { binaryString } from '../core/bytes.ts';
import type { PolicySnapshot } from './snapshot.ts';
import type { PolicyMember } from './types.ts';

/**
 * Who may have lost access between two judgements of access (a reload, or a grant's expiry):
 * the members and torrents to look at again, found by comparing the old snapshot with the new,
 * never by a walk over peers. `lost` answers for one member on one torrent, now.
 */
export interface AccessChange {
  /** Every torrent of these members (disabled, banned, passkey reset, removed, groups changed). */
  members: Set<number>;
  /** Every member on these torrents (removed, made restricted, a group grant gone). */
  torrents: Set<number>;
  /** Member id → torrents whose grant to the member went (revoked or expired). */
  pairs: Map<number, Set<number>>;
  /**
   * Info hashes tracked before and refused to everyone now (off the allow list, onto the deny list,
   * a registered torrent removed): their swarms are dropped whole, whoever their peers are.
   */
  hashes: Uint8Array[];
  /** Of `members`: those whose passkey went (reset, or the member removed). */
  passkeysGone: Set<number>;
  lost(memberId: number, torrentId: number): boolean;
}

/** Whether policy in `mode` tracks the info hash (`key`, its bytes as latin1) in `s`, for anyone. */
function tracked(s: PolicySnapshot, mode: 'open' | 'whitelist' | 'private', key: string): boolean {
  if (s.deny.size > 0 && s.deny.has(key)) return false;
  if (mode === 'open' || (mode === 'whitelist' && s.allow.has(key))) return true;
  return s.torrents.get(Buffer.from(key, 'latin1')) !== undefined;
}

/** Whether `member` holds a grant to `torrentId` in `s` at `now` (unix s). */
export function granted(s: PolicySnapshot, torrentId: number, member: PolicyMember, now: number): boolean {
  const g = s.grants.get(torrentId);
  if (g === undefined) return false;
  const m = g.members.get(member.id);
  if (m !== undefined && (m === 0 || m > now)) return true;
  for (let i = 0; i < member.groups.length; i++) {
    const e = g.groups.get(member.groups[i]);
    if (e !== undefined && (e === 0 || e > now)) return true;
  }
  return false;
}

const live = (exp: number | undefined, at: number) => exp !== undefined && (exp === 0 || exp > at);

const sameGroups = (a: number[], b: number[]) => a.length === b.length && a.every((g, i) => g === b[i]);

/** Entries of the snapshots compared between two yields to the event loop (`accessChange`). */
const DIFF_SLICE = 2048;

/** Info hashes dropped from a synchronous store between two yields to the event loop (`dropUntracked`). */
const DROP_SLICE = 2048;

/**
 * Drops the swarms of the info hashes no longer tracked (`AccessChange.hashes`) from `store`. A
 * synchronous store (memory) is given `DROP_SLICE` hashes at a time with a turn of the event loop
 * between slices, as `accessChange` yields: a deny list grown by 10⁶ hashes, or an allow list
 * replaced, must not stall announces for the whole drop (one call took 190 ms for 10⁶ hashes, 130
 * ms for 10⁵ swarms dropped). An asynchronous store (Redis) gets them in one call, which it sends
 * as one script per bucket. Resolves with the peers removed.
 */
export async function dropUntracked(
  store: {
    readonly synchronous?: boolean;
    dropSwarms?(infoHashes: readonly Uint8Array[]): number | Promise<number>;
  },
  hashes: readonly Uint8Array[],
): Promise<number> {
  if (hashes.length === 0 || store.dropSwarms === undefined) return 0;
  if (store.synchronous !== true) return store.dropSwarms(hashes);
  let removed = 0;
  for (let at = 0; at < hashes.length; at += DROP_SLICE) {
    if (at > 0) await yieldToLoop();
    removed += await store.dropSwarms(hashes.slice(at, at + DROP_SLICE));
  }
  return removed;
}

/**
 * What access `old` gave at `then` that `now` (`next` at `now`) may no longer give: O(members +
 * torrents + grants) of the snapshots, nothing per peer, yielding to the event loop every
 * `DIFF_SLICE` entries (as loads do between pages), so that a reload over 10⁵ members never
 * stalls announces for the whole comparison. Members, torrents and pairs: private mode only (other
 * modes have no members); `hashes`: every mode (in open mode, only the deny list).
 */
export async function accessChange(
  old: PolicySnapshot,
  next: PolicySnapshot,
  then: number,
  now: number,
  mode: 'open' | 'whitelist' | 'private' = 'private',
): Promise<AccessChange> {
  let seen = 0;
  // Hashes no longer tracked: those newly denied, and (but in open mode) those that were listed.
  const hashes: Uint8Array[] = [];
  const untracked = new Set<string>();
  const judge = (key: string) => {
    if (untracked.has(key) || !tracked(old, mode, key) || tracked(next, mode, key)) return;
    untracked.add(key);
    hashes.push(Buffer.from(key, 'latin1'));
  };
  if (old !== next) {
    for (const key of next.deny) {
      if (++seen % DIFF_SLICE === 0) await yieldToLoop();
      if (!old.deny.has(key)) judge(key);
    }
    if (mode === 'whitelist')
      for (const key of old.allow) {
        if (++seen % DIFF_SLICE === 0) await yieldToLoop();
        judge(key);
      }
    if (mode !== 'open')
      for (const hash of old.torrents.hashes()) {
        if (++seen % DIFF_SLICE === 0) await yieldToLoop();
        judge(binaryString(hash));
      }
  }
  const members = new Set<number>();
  const torrents = new Set<number>();
  const pairs = new Map<number, Set<number>>();
  // Members whose passkey went (reset, or the member removed): their peers announced with it.
  const keyGone = new Set<number>();
  if (old !== next)
    for (const [pk, m] of old.members) {
      if (++seen % DIFF_SLICE === 0) await yieldToLoop();
      if (m.status !== 0) continue;
      const n = next.members.get(pk);
      if (n === undefined || n.id !== m.id) keyGone.add(m.id);
      if (n === undefined || n.id !== m.id || n.status !== 0 || !sameGroups(n.groups, m.groups))
        members.add(m.id);
    }
  for (const [tid, g] of old.grants) {
    if (++seen % DIFF_SLICE === 0) await yieldToLoop();
    const ng = next.grants.get(tid);
    for (const [mid, exp] of g.members) {
      if (!live(exp, then) || live(ng?.members.get(mid), now)) continue;
      let set = pairs.get(mid);
      if (set === undefined) {
        set = new Set();
        pairs.set(mid, set);
      }
      set.add(tid);
    }
    for (const [gid, exp] of g.groups)
      if (live(exp, then) && !live(ng?.groups.get(gid), now)) torrents.add(tid);
  }
  if (old !== next)
    for (const [tid, t] of old.torrentById) {
      if (++seen % DIFF_SLICE === 0) await yieldToLoop();
      const n = next.torrentById.get(tid);
      if (n === undefined || (n.restricted && !t.restricted)) torrents.add(tid);
    }
  return {
    members,
    torrents,
    pairs,
    hashes,
    passkeysGone: keyGone,
    lost: (memberId, torrentId) => {
      if (keyGone.has(memberId)) return true;
      const m = next.memberById.get(memberId);
      const t = next.torrentById.get(torrentId);
      return (
        m === undefined || m.status !== 0 || t === undefined || (t.restricted && !granted(next, t.id, m, now))
      );
    },
  };
}
