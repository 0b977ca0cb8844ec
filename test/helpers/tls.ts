import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A self-signed certificate (EC P-256, two days) for CN `cn`, written as DIR/NAME.crt and .key. */
export function makeCert(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
    ],
    { stdio: 'pipe' },
  );
  return { cert, key };
}
