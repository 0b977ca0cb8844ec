/**
 * Valid requests that must get valid answers, whatever the fuzzer sent before: an announce over
 * UDP, HTTP and WebSocket by the "probe" member (whom no fuzzed input names), the API, and the
 * portal for a logged-in member and staff member.
 */

import { announcePath } from '../../test/helpers/clients.ts';
import {
  bdecodeDict,
  binary,
  httpRequest,
  readServerFrames,
  UdpClient,
  WsOp,
  wsFrame,
  wsOpen,
} from '../harness/clients.ts';
import type { Site } from '../harness/fixtures.ts';
import { HARNESS_ADDRESS } from '../harness/fixtures.ts';
import type { Address, HeraldChild } from '../harness/herald-child.ts';

const PEER = Buffer.from('-PR0001-probe0000001');
/**
 * How long a probe waits for its answer. Generous: on two cores shared with a test suite a valid
 * answer can take seconds; a probe exists to catch the one that never comes.
 */
const PROBE_MS = 15_000;
/** The probe's announce: a seeder of the probe torrent, the same over every transport. */
const ANNOUNCE = { peerId: PEER, port: 6881, uploaded: 0, downloaded: 0, left: 0 } as const;

export async function probeUdp(child: HeraldChild, site: Site): Promise<string | null> {
  if (child.udp === null) return 'no udp listener';
  const c = await UdpClient.open(child.udp);
  c.timeoutMs = PROBE_MS;
  try {
    const r = await c.announce({
      ...ANNOUNCE,
      infoHash: site.torrents.probe.infoHash,
      event: 0,
      numWant: 10,
      urlData: `/announce/${site.members.probe.passkey}`,
    });
    if (r === null) return 'udp: no answer to connect + announce';
    if (r.action !== 1) return `udp: announce answered with ${JSON.stringify(r).slice(0, 200)}`;
    return null;
  } finally {
    c.close();
  }
}

export async function probeHttp(addr: Address, site: Site): Promise<string | null> {
  const path = announcePath({
    ...ANNOUNCE,
    infoHash: site.torrents.probe.infoHash,
    base: `/announce/${site.members.probe.passkey}`,
  });
  const r = await httpRequest(addr, 'GET', path, {
    localAddress: HARNESS_ADDRESS,
    timeoutMs: PROBE_MS,
  });
  const d = bdecodeDict(r.body);
  if (r.status !== 200 || d === null)
    return `http: status ${r.status}, body ${r.body.toString('latin1', 0, 200)}`;
  if (d.has('failure reason')) return `http: failure reason ${String(d.get('failure reason'))}`;
  if (typeof d.get('interval') !== 'number') return 'http: no interval in the answer';
  return null;
}

export async function probeWs(addr: Address, site: Site): Promise<string | null> {
  const { socket, rest } = await wsOpen(addr, `/announce/${site.members.probe.passkey}`, PROBE_MS);
  try {
    const msg = JSON.stringify({
      action: 'announce',
      info_hash: binary(site.torrents.probe.infoHash),
      peer_id: binary(PEER),
      uploaded: ANNOUNCE.uploaded,
      downloaded: ANNOUNCE.downloaded,
      left: ANNOUNCE.left,
      numwant: 0,
      offers: [],
    });
    const answer = await new Promise<string | null>((resolve) => {
      let got = rest;
      const t = setTimeout(() => resolve(null), PROBE_MS);
      const onData = (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const { frames } = readServerFrames(got);
        const text = frames.find((f) => f.opcode === WsOp.text);
        if (text) {
          clearTimeout(t);
          socket.off('data', onData);
          resolve(text.payload.toString('utf8'));
        }
      };
      socket.on('data', onData);
      socket.once('close', () => resolve(null));
      if (rest.length > 0) onData(Buffer.alloc(0));
      socket.write(wsFrame(WsOp.text, Buffer.from(msg)));
    });
    if (answer === null) return 'ws: no answer to an announce';
    const j = JSON.parse(answer) as Record<string, unknown>;
    if ('failure reason' in j) return `ws: failure reason ${String(j['failure reason'])}`;
    if (typeof j.interval !== 'number') return `ws: unexpected answer ${answer.slice(0, 200)}`;
    return null;
  } finally {
    socket.destroy();
  }
}

export async function probeApi(addr: Address, site: Site): Promise<string | null> {
  const r = await httpRequest(addr, 'GET', '/api/members/probe', {
    headers: { authorization: `Bearer ${site.token}` },
    localAddress: HARNESS_ADDRESS,
    timeoutMs: PROBE_MS,
  });
  if (r.status !== 200) return `api: GET /api/members/probe: ${r.status}`;
  const j = JSON.parse(r.body.toString()) as { username?: string };
  return j.username === 'probe' ? null : 'api: wrong member returned';
}

export async function probePortal(addr: Address, site: Site): Promise<string | null> {
  // The probes' own accounts: the portal target logs "member" and "staff" out now and then.
  for (const [who, path] of [
    ['probe', '/torrents'],
    ['staffprobe', '/staff/members'],
  ] as const) {
    const r = await httpRequest(addr, 'GET', path, {
      headers: { cookie: site.sessions[who].cookie },
      localAddress: HARNESS_ADDRESS,
      timeoutMs: PROBE_MS,
    });
    if (r.status !== 200) return `portal: ${who} GET ${path}: ${r.status}`;
  }
  return null;
}

/** /stats as the operator sees it (internal errors since start, among other figures). */
export async function statsOf(addr: Address): Promise<{ internalErrors: number } & Record<string, unknown>> {
  const r = await httpRequest(addr, 'GET', '/stats', { localAddress: HARNESS_ADDRESS, timeoutMs: PROBE_MS });
  return JSON.parse(r.body.toString());
}

/** Every probe in turn; the failures (empty when everything answered as it should). */
export async function probeAll(child: HeraldChild, site: Site): Promise<string[]> {
  const out: string[] = [];
  for (const p of [
    () => probeUdp(child, site),
    () => probeHttp(child.http, site),
    () => probeWs(child.http, site),
    () => probeApi(child.http, site),
    () => probePortal(child.http, site),
  ]) {
    try {
      const r = await p();
      if (r !== null) out.push(r);
    } catch (err) {
      out.push(String(err));
    }
  }
  return out;
}
