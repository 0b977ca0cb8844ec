import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIp } from '../core/address.ts';
import { endpointKey, isPrivateAddress } from './checker.ts';

const ip = (text: string) => parseIp(text)!.bytes;

test('private, loopback, link-local, multicast and reserved addresses are never checked by default', () => {
  for (const a of [
    '0.0.0.0',
    '10.1.2.3',
    '127.0.0.1',
    '100.64.0.1',
    '169.254.1.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '192.0.0.8',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'ff02::1',
    '::ffff:0:1',
  ])
    assert.equal(isPrivateAddress(ip(a)), true, a);
  for (const a of [
    '1.1.1.1',
    '8.8.8.8',
    '100.128.0.1',
    '172.32.0.1',
    '192.169.0.1',
    '2001:db8::1',
    '2a00:1450::1',
  ])
    assert.equal(isPrivateAddress(ip(a)), false, a);
});

test("an endpoint's key is its compact record: address bytes, then the port big-endian", () => {
  const key = endpointKey(ip('1.2.3.4'), 0x1ae1);
  assert.deepEqual(Buffer.from(key, 'latin1'), Buffer.from([1, 2, 3, 4, 0x1a, 0xe1]));
  assert.equal(endpointKey(ip('::1'), 80).length, 18);
});
