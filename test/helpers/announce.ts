import { AnnounceEvent, type AnnounceRequest } from '../../src/core/types.ts';

/**
 * An announce of peer number `peer` (its peer id `-qB4500-` and the number, from 10.0.0.<peer>),
 * leeching, with no event: what the accounting unit tests send, changed by `f`.
 */
export function peerAnnounce(peer: number, f: Partial<AnnounceRequest> = {}): AnnounceRequest {
  const peerId = Buffer.alloc(20);
  peerId.write(`-qB4500-${String(peer).padStart(12, '0')}`);
  return {
    infoHash: new Uint8Array(20),
    peerId,
    family: 4,
    ip: new Uint8Array([10, 0, 0, peer & 255]),
    port: 6881,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    event: AnnounceEvent.none,
    numWant: 50,
    wantPeerIds: false,
    ...f,
  };
}
