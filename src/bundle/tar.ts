// The bundle tar laid out before a byte is written: every entry's header and the offset of its
// data follow from the paths and sizes alone, so concurrent writers can put each file straight
// at its place. Headers are POSIX ustar as GNU tar writes them (`tar --format=ustar
// --numeric-owner --owner=0 --group=0 --mtime=@0`: mtime 0, uid/gid 0, no user or group names);
// a path that fits neither the name field nor prefix + name, or a size beyond ustar's 8 GiB, gets
// a PAX extended header ('x') before its ustar header, which GNU tar and the bundle reader read.
import { SealiftError } from '../errors.ts';

export const TAR_BLOCK = 512;
/** ustar's size field: 11 octal digits */
const USTAR_MAX_SIZE = 0o77777777777;

export interface TarFileSpec {
  /** relative POSIX path */
  path: string;
  size: number;
  /** permission bits, e.g. 0o644 */
  mode: number;
}

export interface PlacedTarFile extends TarFileSpec {
  /** where this entry's header(s) start */
  headerOffset: number;
  /** where its data starts (after the header, and any PAX header before it) */
  dataOffset: number;
  /** the header bytes written at headerOffset (512, or more with a PAX header) */
  header: Buffer;
}

export interface TarLayout {
  files: PlacedTarFile[];
  /** the archive's whole size, the two zero blocks at the end included */
  size: number;
}

const padded = (n: number) => Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;

function octal(buf: Buffer, at: number, width: number, value: number): void {
  // width - 1 digits and a NUL, as GNU tar writes them
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, width, 'ascii');
}

/** ustar splits a long path at a "/" into prefix (155 bytes) and name (100 bytes); GNU tar takes the longest prefix. */
function splitUstarPath(path: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    if (Buffer.byteLength(prefix) > 155) continue;
    const name = path.slice(i + 1);
    return name !== '' && Buffer.byteLength(name) <= 100 ? { prefix, name } : undefined;
  }
  return undefined;
}

function ustarBlock(f: { name: string; prefix: string; size: number; mode: number; type: '0' | 'x' }): Buffer {
  const b = Buffer.alloc(TAR_BLOCK);
  b.write(f.name, 0, 100, 'utf8');
  octal(b, 100, 8, f.mode);
  octal(b, 108, 8, 0); // uid
  octal(b, 116, 8, 0); // gid
  octal(b, 124, 12, f.size);
  octal(b, 136, 12, 0); // mtime: a bundle's bytes do not depend on when it was made
  b.write(f.type, 156, 1, 'ascii');
  b.write('ustar\x0000', 257, 8, 'ascii');
  octal(b, 329, 8, 0); // devmajor
  octal(b, 337, 8, 0); // devminor
  b.write(f.prefix, 345, 155, 'utf8');
  // the checksum counts its own field as eight spaces
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

/** One PAX record: "<len> key=value\n", where len counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** The header bytes of one regular file: a ustar block, preceded by a PAX header when needed. */
export function tarHeader(f: TarFileSpec): Buffer {
  if (!Number.isSafeInteger(f.size) || f.size < 0)
    throw new SealiftError('INTERNAL', `tar entry ${f.path}: invalid size ${f.size}`);
  const split = splitUstarPath(f.path);
  const bigSize = f.size > USTAR_MAX_SIZE;
  if (split && !bigSize)
    return ustarBlock({ name: split.name, prefix: split.prefix, size: f.size, mode: f.mode, type: '0' });
  const records = `${split ? '' : paxRecord('path', f.path)}${bigSize ? paxRecord('size', String(f.size)) : ''}`;
  const body = Buffer.alloc(padded(Buffer.byteLength(records)));
  body.write(records, 0, 'utf8');
  const base = f.path.slice(f.path.lastIndexOf('/') + 1);
  const paxName = `PaxHeader/${base}`.slice(0, 100);
  return Buffer.concat([
    ustarBlock({ name: paxName, prefix: '', size: Buffer.byteLength(records), mode: 0o644, type: 'x' }),
    body,
    // the ustar fields still say what they can: a truncated name, and 0 for a size they cannot hold
    ustarBlock({
      name: split?.name ?? f.path.slice(-100).replace(/^[^/]*\//, ''),
      prefix: split?.prefix ?? '',
      size: bigSize ? 0 : f.size,
      mode: f.mode,
      type: '0',
    }),
  ]);
}

/** Places the files in the order given: header, data padded to 512, next; then the end marker. */
export function layoutTar(files: readonly TarFileSpec[]): TarLayout {
  const placed: PlacedTarFile[] = [];
  let at = 0;
  for (const f of files) {
    const header = tarHeader(f);
    placed.push({ ...f, headerOffset: at, dataOffset: at + header.length, header });
    at += header.length + padded(f.size);
  }
  return { files: placed, size: at + 2 * TAR_BLOCK };
}
