import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A file the operator names (a configuration file, a .torrent, standard input), read up to `max`
 * bytes. A whole read of the wrong file (`/dev/zero`, a log, a disk image) would run the process
 * out of memory with a V8 trace instead of failing with one line that names the file; past `max`
 * this throws "larger than `max` bytes" for the caller to put in context.
 */
export function readBounded(file: string | number, max: number): Buffer {
  const fd = typeof file === 'number' ? file : openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(max + 1);
    let n = 0;
    for (let got = 1; got > 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > max) throw new Error(`larger than ${max} bytes`);
    return buf.subarray(0, n);
  } finally {
    if (typeof file !== 'number') closeSync(fd);
  }
}
