/**
 * A WebTorrent client for tests over real WebSockets (the `ws` package): it keeps every message it
 * receives, and waits for the ones a test expects.
 */
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';

type Msg = Record<string, unknown>;

/** A 20-byte binary string naming test things (peers, offers): `a`, `b`, `c` in the first bytes. */
export function id20(a: number, b: number, c = 0): string {
  const x = Buffer.alloc(20, 0x20);
  x.writeUInt32BE(a >>> 0, 0);
  x.writeUInt32BE(b >>> 0, 4);
  x.writeUInt32BE(c >>> 0, 8);
  x[19] = 0xfe;
  return x.toString('latin1');
}

export const sdp = (type: 'offer' | 'answer', n: number) => ({
  type,
  sdp: `v=0\r\no=- ${n} 2 IN IP4 127.0.0.1\r\n`,
});

/** A WebSocket client that keeps every message it receives. */
export class Peer {
  readonly ws: WebSocket;
  readonly got: Msg[] = [];
  /** Where its connection is held (the worker process, or the node of an in-process cluster). */
  worker = 0;
  localPort = 0;
  readonly peerId: string;
  readonly closed: Promise<void>;
  #wake: (() => void)[] = [];

  constructor(url: string, peerId: string) {
    this.peerId = peerId;
    this.ws = new WebSocket(url);
    this.ws.on('upgrade', (res) => {
      this.localPort = res.socket.localPort ?? 0;
    });
    this.ws.on('message', (d) => {
      this.got.push(JSON.parse(String(d)) as Msg);
      for (const w of this.#wake.splice(0)) w();
    });
    this.ws.on('error', () => {});
    this.closed = new Promise((r) => this.ws.once('close', () => r()));
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  send(m: Msg): void {
    this.ws.send(JSON.stringify(m));
  }

  /** Waits until `count` received messages match `pred`; returns them (left in `got`). */
  async waitFor(pred: (m: Msg) => boolean, count = 1, ms = 15_000): Promise<Msg[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.got.filter(pred);
      if (found.length >= count) return found;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`socket on ${this.worker}: ${found.length} of ${count} messages after ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Sends an announce and waits for its response (not an offer or answer relayed to it). */
  async announce(infoHash: string, fields: Msg = {}): Promise<Msg> {
    const before = this.got.filter(isResponseFor(infoHash)).length;
    this.send({ action: 'announce', info_hash: infoHash, peer_id: this.peerId, left: 100, ...fields });
    const all = await this.waitFor(isResponseFor(infoHash), before + 1);
    return all[all.length - 1];
  }

  async scrape(info_hash?: string[]): Promise<Record<string, Record<string, number>>> {
    const before = this.got.filter((m) => m.action === 'scrape').length;
    this.send(info_hash === undefined ? { action: 'scrape' } : { action: 'scrape', info_hash });
    const all = await this.waitFor((m) => m.action === 'scrape', before + 1);
    const last = all[all.length - 1];
    assert.equal(last['failure reason'], undefined, String(last['failure reason']));
    return last.files as Record<string, Record<string, number>>;
  }
}

export const isResponseFor = (h: string) => (m: Msg) =>
  m.action === 'announce' && m.info_hash === h && m.offer === undefined && m.answer === undefined;
export const isOfferFor = (h: string) => (m: Msg) => m.info_hash === h && m.offer !== undefined;
export const isAnswerFor = (h: string) => (m: Msg) => m.info_hash === h && m.answer !== undefined;
