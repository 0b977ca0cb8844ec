/*
 * What policy hands to the tracker service and accounting about who announces on what, in a
 * module of its own so that the service and policy do not import each other (issue #15).
 */

/** A member as the hot path needs it. */
export interface PolicyMember {
  id: number;
  status: 0 | 1 | 2; // active, disabled, banned
  groups: number[];
  /**
   * Download rights (issue #16): 0 may leech; 1 suspended by ratio watch; 2 suspended by staff;
   * 3 suspended for hit-and-runs. Absent where only accounting needs the member (another
   * worker's announce): 0.
   */
  leech?: 0 | 1 | 2 | 3;
  /** Hit-and-run: active ones now (announces carry a `warning message`). */
  hnr?: number;
  /** Ratio watch: warned now (announces carry a `warning message`). */
  warned?: boolean;
  /**
   * The passkey this member is found by in the snapshot (its current key). Absent where only
   * accounting needs the member (another worker's announce).
   */
  passkey?: string;
}

/** A registered torrent as the hot path needs it. */
export interface PolicyTorrent {
  id: number;
  restricted: boolean;
  downloadFactor: number;
  uploadFactor: number;
  /**
   * The hash that decides which worker owns this torrent's swarms and accounting
   * (`--workers`, issue #13): its v1 hash, or its v2 hash when it has none. Both hashes of a
   * hybrid torrent route to one worker, so a client announcing both is credited once.
   */
  route: Uint8Array;
}
