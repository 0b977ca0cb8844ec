/**
 * WebTorrent client messages (what a browser sends the tracker) and their mutations: used over
 * real sockets by the ws target and in-process by the wsjson target.
 */
import { binary } from '../harness/clients.ts';
import { JSON_TOKENS, mutate, mutateJson, type Space } from './mutate.ts';
import type { Rng } from './rng.ts';

const SDP =
  'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n' +
  'a=candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host\r\n';

/** WebTorrent client messages, as objects (so that JSON-aware mutations can reach every value). */
export function wsMessages(infoHash: Buffer, otherHash: Buffer): Record<string, unknown>[] {
  const ih = binary(infoHash);
  const other = binary(otherHash);
  const peer = '-WW0001-wsfuzz000001';
  const base = { action: 'announce', info_hash: ih, peer_id: peer, uploaded: 0, downloaded: 0, left: 1000 };
  return [
    {
      ...base,
      event: 'started',
      numwant: 5,
      offers: [
        { offer: { type: 'offer', sdp: SDP }, offer_id: binary(Buffer.alloc(20, 1)) },
        { offer: { type: 'offer', sdp: SDP }, offer_id: binary(Buffer.alloc(20, 2)) },
      ],
    },
    { ...base, uploaded: 65536, downloaded: 1000, left: 0, event: 'completed', numwant: 0, offers: [] },
    {
      ...base,
      to_peer_id: '-WW0001-wsfuzz000002',
      answer: { type: 'answer', sdp: SDP },
      offer_id: binary(Buffer.alloc(20, 1)),
    },
    { action: 'scrape', info_hash: [ih, other] },
    { action: 'scrape', info_hash: ih },
    { ...base, event: 'stopped', left: 500 },
    { ...base, info_hash: other, numwant: 50 },
  ];
}

export const WS_TOKENS = [
  ...JSON_TOKENS,
  ...[
    '"action"',
    '"announce"',
    '"scrape"',
    '"info_hash"',
    '"peer_id"',
    '"offers"',
    '"offer_id"',
    '"to_peer_id"',
    '"answer"',
    '"numwant"',
    '"event"',
    '"left"',
    '\u00ff',
    '\u0080',
  ].map((s) => Buffer.from(s, 'utf8')),
];

const spaces = new WeakMap<object, Space>();

/** A mutated message text: JSON-aware (values, keys, nesting) or byte-level, half and half. */
export function mutateWsText(rng: Rng, messages: Record<string, unknown>[]): Buffer {
  let space = spaces.get(messages);
  if (space === undefined) {
    space = {
      templates: messages.map((m) => Buffer.from(JSON.stringify(m), 'utf8')),
      tokens: WS_TOKENS,
      separators: [Buffer.from(','), Buffer.from(':')],
      numbers: 'text',
      maxLength: 80 * 1024,
    };
    spaces.set(messages, space);
  }
  return rng.chance(0.5) ? Buffer.from(mutateJson(rng, rng.pick(messages)), 'utf8') : mutate(rng, space);
}
