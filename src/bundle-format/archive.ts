// A bundle read in place: an index of a tar (or of its split parts, one offset space) built by
// walking the headers, and byte ranges streamed straight out of it. Nothing is extracted.
//
// This is the one reader of the bundle format: load, bundle verify and anything else that reads a
// bundle open it here, and check it with check.ts.
//
// The tar is untrusted input. Every entry is checked before it is indexed: no absolute paths, no
// `..`, no links of any kind (a bundle holds regular files and directories only, names.ts: so
// nothing is ever resolved, and no loop can be built), no devices or FIFOs, no duplicate paths,
// no header with a bad checksum, no entry whose bytes run past the end, and an end-of-archive
// marker must be there. A file that is no tar at all is named as such. A directory (an already
// extracted bundle) is read with the same rules.
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { Header, Pax, type HeaderData } from 'tar';
import { SealiftError } from '../errors.ts';
import { BUNDLE_INDEX_FILE, isWorkFileName } from './names.ts';

const BLOCK = 512;
/** PAX and GNU long-name bodies are small; a huge one is an attack, not a bundle. */
const MAX_META_BYTES = 1024 * 1024;

export type EntryType = 'file' | 'directory';

export interface ArchiveEntry {
  /** normalized path inside the archive: no leading `./`, no trailing `/` */
  path: string;
  type: EntryType;
  /** byte offset of the entry's data in the archive's offset space (tar only) */
  offset: number;
  size: number;
}

/** What load needs from a bundle on disk, whether a tar, split parts or a directory. */
export interface BundleArchive {
  /** what the user gave, for messages */
  readonly location: string;
  readonly kind: 'tar' | 'parts' | 'directory';
  /** the files on disk that hold the archive: the tar or its parts in order; empty for a directory */
  readonly files: readonly string[];
  /** every entry, in archive order */
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  /** the regular file a path names; undefined if absent (or a directory) */
  lookup(path: string): ArchiveEntry | undefined;
  /** a stream of exactly the file's bytes */
  open(path: string): Readable;
  /** a small file (bundle.json, checksums, a manifest) read whole */
  readSmall(path: string, maxBytes?: number): Promise<Buffer>;
  close(): Promise<void>;
}

export function invalid(
  location: string,
  message: string,
  hint?: string,
  details?: Record<string, unknown>,
): SealiftError {
  return new SealiftError('BUNDLE_INVALID', `${location}: ${message}`, {
    hint:
      hint ??
      'The bundle is damaged or unsafe and nothing was loaded from it. Copy it again from the source, and compare its .sha256 files.',
    ...(details ? { details } : {}),
  });
}

/**
 * Normalizes an archive path and refuses the unsafe ones. Returns '' for the root (`.` or `./`).
 */
export function normalizeEntryPath(raw: string, location: string): string {
  if (raw.includes('\0')) throw invalid(location, `entry "${raw.replace(/\0/g, '\\0')}" has a NUL byte in its path`);
  if (raw.startsWith('/'))
    throw invalid(
      location,
      `entry "${raw}" has an absolute path`,
      'A bundle holds only relative paths; this one was made to write outside its directory. Do not use it.',
    );
  if (/^[A-Za-z]:[\\/]/.test(raw) || raw.includes('\\')) throw invalid(location, `entry "${raw}" has a Windows path`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw invalid(
      location,
      `entry "${raw}" has ".." in its path`,
      'A bundle never holds ".." paths; this one was made to write outside its directory. Do not use it.',
    );
  }
  return parts.join('/');
}

const NO_LINKS_HINT =
  'A bundle holds regular files and directories only; `sealift bundle` never writes a link. Do not use this bundle: copy the one sealift wrote again.';

function linkRefused(location: string, path: string, kind: string, target: string): SealiftError {
  return invalid(location, `"${path}" is a ${kind} (-> "${target}"); a bundle holds no links`, NO_LINKS_HINT, {
    entry: path,
  });
}

export function notATar(location: string, why: string): SealiftError {
  return new SealiftError('BUNDLE_INVALID', `${location} is not a sealift bundle (not a tar): ${why}`, {
    hint: 'Give the uncompressed .tar that `sealift bundle` wrote (checksums.sha256 and bundle.json are its first entries), the first part of a split bundle (.tar.part-000), or a directory holding an extracted bundle.',
  });
}

// ---------------------------------------------------------------------------------------------
// One offset space over a tar or its parts

interface Part {
  path: string;
  start: number;
  size: number;
  fh: FileHandle;
}

export class PartedFile {
  readonly parts: Part[];
  readonly total: number;
  constructor(parts: Part[]) {
    this.parts = parts;
    this.total = parts.reduce((n, p) => n + p.size, 0);
  }

  static async open(paths: string[]): Promise<PartedFile> {
    const parts: Part[] = [];
    let start = 0;
    try {
      for (const p of paths) {
        const fh = await open(p, 'r');
        const { size } = await fh.stat();
        parts.push({ path: p, start, size, fh });
        start += size;
      }
    } catch (e) {
      await Promise.all(parts.map((p) => p.fh.close()));
      throw e;
    }
    return new PartedFile(parts);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const part = this.parts.find((p) => at >= p.start && at < p.start + p.size);
      if (!part) break;
      const n = Math.min(length - done, part.start + part.size - at);
      const { bytesRead } = await part.fh.read(out, done, n, at - part.start);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? out : out.subarray(0, done);
  }

  /** A stream of [offset, offset+length) crossing part boundaries as one file. */
  stream(offset: number, length: number): Readable {
    const pieces: { path: string; start: number; end: number }[] = [];
    let at = offset;
    const end = offset + length;
    for (const p of this.parts) {
      if (at >= end) break;
      const pEnd = p.start + p.size;
      if (at >= pEnd) continue;
      const n = Math.min(end, pEnd) - at;
      pieces.push({ path: p.path, start: at - p.start, end: at - p.start + n - 1 });
      at += n;
    }
    if (pieces.length === 1 && pieces[0])
      return createReadStream(pieces[0].path, { start: pieces[0].start, end: pieces[0].end, highWaterMark: 1 << 20 });
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    void (async () => {
      try {
        for (const piece of pieces) {
          if (piece.end < piece.start) continue;
          for await (const chunk of createReadStream(piece.path, {
            start: piece.start,
            end: piece.end,
            highWaterMark: 1 << 20,
          })) {
            if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
            if (out.destroyed) return;
          }
        }
        out.end();
      } catch (e) {
        out.destroy(e as Error);
      }
    })();
    if (length === 0) out.end();
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.fh.close()));
  }
}

// ---------------------------------------------------------------------------------------------
// Compression: the whole tar stream, told by its magic bytes (never by the file's name)

export type Compression = 'none' | 'gzip' | 'zstd';

/** zstd frames start 28 b5 2f fd, gzip members 1f 8b; anything else is read as a tar. */
export function compressionOf(magic: Buffer): Compression {
  if (magic.length >= 4 && magic[0] === 0x28 && magic[1] === 0xb5 && magic[2] === 0x2f && magic[3] === 0xfd)
    return 'zstd';
  if (magic.length >= 2 && magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip';
  return 'none';
}

/** The compression of the stream a file (a bundle, or its first part) starts. */
export async function compressionOfFile(path: string): Promise<Compression> {
  const head = Buffer.alloc(4);
  const fh = await open(path, 'r');
  try {
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return compressionOf(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Finding the parts

const PART_RE = /^(.*)\.part-(\d{3,})$/;

/** `x.tar` -> [x.tar]; `x.tar.part-000` -> every consecutive `x.tar.part-NNN` beside it. */
export async function findParts(file: string): Promise<string[]> {
  const m = PART_RE.exec(basename(file));
  if (!m) return [file];
  const [, stem = '', num = ''] = m;
  if (Number(num) !== 0) {
    throw new SealiftError('USAGE', `${file} is part ${Number(num)} of a split bundle`, {
      hint: `Give the first part, ${join(dirname(file), `${stem}.part-${'0'.repeat(num.length)}`)}; sealift reads the others beside it.`,
    });
  }
  const dir = dirname(file);
  const names = await readdir(dir);
  const found = new Map<number, string>();
  for (const name of names) {
    const pm = PART_RE.exec(name);
    if (pm && pm[1] === stem) found.set(Number(pm[2]), join(dir, name));
  }
  const parts: string[] = [];
  for (let i = 0; found.has(i); i++) parts.push(found.get(i) as string);
  const highest = Math.max(...found.keys());
  if (highest >= parts.length) {
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${file}: part ${parts.length} of the split bundle is missing (parts up to ${highest} are there)`,
      {
        hint: `Copy every ${stem}.part-NNN file into ${dir}.`,
      },
    );
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// The tar walker

function isAllZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function cString(b: Buffer): string {
  const s = b.toString('utf8');
  const i = s.indexOf('\0');
  return i === -1 ? s : s.slice(0, i);
}

/**
 * Bytes of a tar by offset. A file (or its parts) reads anywhere; a stream (stream.ts) reads
 * forward only, which is all the walker asks: it never reads behind an entry it has passed.
 */
export interface TarBytes {
  /** up to `length` bytes at `offset` (fewer only at the end of the data) */
  read(offset: number, length: number): Promise<Buffer>;
  /** the size, when known before the end (a file); a stream learns it at the end */
  readonly total?: number | undefined;
}

/**
 * The one tar walker: every header checked (see the top of this file), each file or directory
 * entry yielded in archive order with its data's offset and size. The caller may read the data
 * (a stream must, or have it skipped) before asking for the next entry.
 */
export async function* walkTar(file: TarBytes, location: string): AsyncGenerator<ArchiveEntry> {
  const seen = new Map<string, EntryType>();
  let off = 0;
  let ex: HeaderData | undefined;
  let gex: HeaderData | undefined;
  const known = file.total;
  const truncated = (what: string) =>
    invalid(
      location,
      `the archive is truncated: ${what}${known !== undefined ? ` (it has ${known} bytes)` : ''}`,
      'The copy of the bundle is incomplete (a cut transfer or pipe, a missing part). Copy it again (and every part, if it was split), or send the whole stream again.',
    );
  for (;;) {
    if (off === 0 && known !== undefined && known < 2 * BLOCK)
      throw notATar(location, `it has ${known} bytes, less than an empty tar (1024)`);
    if (known !== undefined && off + BLOCK > known)
      throw truncated(`it ends at byte ${off} without the end-of-archive marker`);
    const block = await file.read(off, BLOCK);
    if (off === 0 && known === undefined && block.length < BLOCK)
      throw notATar(location, `it has ${block.length} bytes, less than an empty tar (1024)`);
    if (block.length === 0) throw truncated(`it ends at byte ${off} without the end-of-archive marker`);
    if (block.length < BLOCK) throw truncated(`a header at byte ${off} is cut short`);
    if (isAllZero(block)) {
      if (off === 0) throw notATar(location, 'it starts with an end-of-archive marker (an empty tar)');
      const next = await file.read(off + BLOCK, BLOCK);
      if (next.length < BLOCK) throw truncated(`the end-of-archive marker at byte ${off} is cut short`);
      if (!isAllZero(next))
        throw invalid(location, `a zero block at byte ${off} is followed by data: the archive is damaged`);
      if (ex) throw invalid(location, 'the archive ends with an extended header that describes no entry');
      return;
    }
    let header: Header;
    try {
      header = new Header(block, 0);
    } catch (e) {
      // node-tar throws on fields it cannot decode (base256 sizes and times of random bytes)
      if (off === 0) throw notATar(location, `its first 512 bytes are no tar header (${(e as Error).message})`);
      throw invalid(location, `the tar header at byte ${off} cannot be decoded: ${(e as Error).message}`);
    }
    if (!header.cksumValid && off === 0)
      throw notATar(location, 'its first 512 bytes are no tar header (bad checksum)');
    if (!header.cksumValid) {
      throw invalid(
        location,
        `the tar header at byte ${off} is damaged (bad checksum)${off > 0 ? '; the bytes before it do not line up with the entries, so a file was altered, cut or a part is missing' : ''}`,
      );
    }
    const typeKey = header.typeKey;
    const size =
      typeKey === 'x' || typeKey === 'g' || typeKey === 'L' || typeKey === 'K' || typeKey === 'X'
        ? (header.size ?? 0)
        : (ex?.size ?? header.size ?? 0);
    const dataOff = off + BLOCK;
    const rawPath = ex?.path ?? header.path ?? '';
    if (!Number.isSafeInteger(size) || size < 0) throw invalid(location, `entry "${rawPath}" has an invalid size`);
    if (known !== undefined && dataOff + size > known)
      throw truncated(`entry "${rawPath}" needs ${size} bytes from byte ${dataOff}`);
    const next = dataOff + Math.ceil(size / BLOCK) * BLOCK;
    const readMeta = async (what: string) => {
      if (size > MAX_META_BYTES)
        throw invalid(location, `${what} at byte ${off} is ${size} bytes, more than a bundle ever needs`);
      const b = await file.read(dataOff, size);
      if (b.length < size) throw truncated(`${what} at byte ${off} is cut short`);
      return b;
    };
    switch (typeKey) {
      case 'x':
      case 'X':
        ex = Pax.parse((await readMeta('an extended header')).toString('utf8'), ex, false);
        off = next;
        continue;
      case 'g':
        // global headers carry nothing sealift uses (never a path); parsed to keep the walk in step
        gex = Pax.parse((await readMeta('a global extended header')).toString('utf8'), gex, true);
        off = next;
        continue;
      case 'L':
      case 'N':
        ex = { ...ex, path: cString(await readMeta('a long path')) };
        off = next;
        continue;
      case 'K':
        ex = { ...ex, linkpath: cString(await readMeta('a long link path')) };
        off = next;
        continue;
      default:
        break;
    }
    const path = normalizeEntryPath(rawPath, location);
    const linkpath = ex?.linkpath ?? header.linkpath ?? '';
    ex = undefined;
    let entry: ArchiveEntry;
    switch (typeKey) {
      case '0':
      case '':
      case '7':
        if (path === '') throw invalid(location, `a file entry at byte ${off} has an empty path`);
        entry = { path, type: 'file', offset: dataOff, size };
        break;
      case '5':
        entry = { path, type: 'directory', offset: dataOff, size: 0 };
        break;
      case '2':
        throw linkRefused(location, path, 'symlink', linkpath);
      case '1':
        throw linkRefused(location, path, 'hard link', linkpath);
      case '3':
      case '4':
      case '6':
        throw invalid(
          location,
          `entry "${rawPath}" is a ${header.type === 'FIFO' ? 'FIFO' : 'device file'}; a bundle holds only files and directories`,
          'Do not use this bundle: it was not made by sealift.',
        );
      default:
        throw invalid(location, `entry "${rawPath}" has the unsupported tar type "${typeKey}" (${header.type})`);
    }
    off = next;
    if (path === '' && entry.type === 'directory') continue;
    const prior = seen.get(path);
    if (prior && !(prior === 'directory' && entry.type === 'directory')) {
      throw invalid(
        location,
        `entry "${path}" appears twice; a later copy could replace what was checked`,
        'Do not use this bundle: it was not made by sealift.',
      );
    }
    seen.set(path, entry.type);
    yield entry;
  }
}

/** Every entry of a tar on disk, by path (headers only: the data is skipped by offset). */
export async function indexTar(file: TarBytes, location: string): Promise<Map<string, ArchiveEntry>> {
  const entries = new Map<string, ArchiveEntry>();
  for await (const e of walkTar(file, location)) entries.set(e.path, e);
  return entries;
}

/** The regular file at a path (normalized the way entries are); never follows anything. */
export function lookupIn(
  entries: ReadonlyMap<string, ArchiveEntry>,
  path: string,
  location: string,
): ArchiveEntry | undefined {
  const e = entries.get(normalizeEntryPath(path, location));
  return e?.type === 'file' ? e : undefined;
}

async function readAllStream(s: Readable, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > maxBytes) {
      s.destroy();
      throw new SealiftError('BUNDLE_INVALID', `${what} is larger than ${maxBytes} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The entry a readSmall names, refused when absent or larger than `maxBytes`. */
export function smallEntry(archive: BundleArchive, path: string, maxBytes: number): ArchiveEntry {
  const e = archive.lookup(path);
  if (!e) throw new SealiftError('BUNDLE_INVALID', `${archive.location}: "${path}" is not in the bundle`);
  if (e.size > maxBytes)
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: "${path}" is ${e.size} bytes, larger than ${maxBytes}`,
    );
  return e;
}

class TarArchive implements BundleArchive {
  readonly location: string;
  readonly kind: 'tar' | 'parts';
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  readonly files: readonly string[];
  private readonly file: PartedFile;
  constructor(location: string, file: PartedFile, entries: Map<string, ArchiveEntry>) {
    this.location = location;
    this.file = file;
    this.entries = entries;
    this.kind = file.parts.length > 1 ? 'parts' : 'tar';
    this.files = file.parts.map((p) => p.path);
  }
  lookup(path: string): ArchiveEntry | undefined {
    return lookupIn(this.entries, path, this.location);
  }
  open(path: string): Readable {
    const e = this.lookup(path);
    if (!e) throw new SealiftError('BUNDLE_INVALID', `${this.location}: "${path}" is not in the bundle`);
    return this.file.stream(e.offset, e.size);
  }
  async readSmall(path: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    const e = smallEntry(this, path, maxBytes);
    return this.file.read(e.offset, e.size);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

// ---------------------------------------------------------------------------------------------
// A directory holding an extracted bundle

class DirArchive implements BundleArchive {
  readonly location: string;
  readonly kind = 'directory' as const;
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  readonly files: readonly string[] = [];
  private readonly root: string;
  constructor(root: string, entries: Map<string, ArchiveEntry>) {
    this.root = root;
    this.location = root;
    this.entries = entries;
  }
  lookup(path: string): ArchiveEntry | undefined {
    return lookupIn(this.entries, path, this.location);
  }
  open(path: string): Readable {
    const e = this.lookup(path);
    if (!e) throw new SealiftError('BUNDLE_INVALID', `${this.location}: "${path}" is not in the bundle`);
    if (e.size === 0) return Readable.from([]);
    return createReadStream(join(this.root, ...e.path.split('/')), {
      start: 0,
      end: e.size - 1,
      highWaterMark: 1 << 20,
    });
  }
  async readSmall(path: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    return readAllStream(this.open(path), maxBytes, `${this.location}/${path}`);
  }
  async close(): Promise<void> {}
}

async function indexDir(root: string): Promise<Map<string, ArchiveEntry>> {
  const entries = new Map<string, ArchiveEntry>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      // the writer's own work files (names.ts), which load neither checks nor reads nor extracts
      if (isWorkFileName(name)) continue;
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        entries.set(path, { path, type: 'directory', offset: 0, size: 0 });
        await walk(abs, path);
      } else if (st.isFile()) {
        entries.set(path, { path, type: 'file', offset: 0, size: st.size });
      } else if (st.isSymbolicLink()) {
        // refused, not followed: a link the check hashed could point elsewhere by the time it is read
        throw linkRefused(root, path, 'symlink', await readlink(abs));
      } else {
        throw invalid(root, `"${path}" is a device, FIFO or socket; a bundle holds only files and directories`);
      }
    }
  };
  await walk(root, '');
  return entries;
}

// ---------------------------------------------------------------------------------------------

/** The bundle's file or directory; NOT_FOUND with `hint` (the forms the caller reads) when absent. */
export async function statBundle(input: string, hint: string): Promise<Awaited<ReturnType<typeof stat>>> {
  const st = await stat(resolve(input)).catch(() => undefined);
  if (!st) throw new SealiftError('NOT_FOUND', `bundle ${input} does not exist`, { hint });
  return st;
}

/**
 * Opens a bundle given as a tar, the first of its parts, or an extracted directory, and indexes
 * it. Refuses unsafe or damaged archives before anything is read out of them.
 */
export async function openBundleArchive(input: string): Promise<BundleArchive> {
  const abs = resolve(input);
  const st = await statBundle(
    input,
    'Give the bundle .tar, the first part of a split bundle (.tar.part-000), or a directory holding an extracted bundle.',
  );
  if (st.isDirectory()) {
    const entries = await indexDir(abs);
    if (!entries.has(BUNDLE_INDEX_FILE))
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${input} is not a sealift bundle directory: it has no ${BUNDLE_INDEX_FILE}`,
        {
          hint: 'Give the directory `sealift bundle --no-pack` wrote (or one a bundle tar was extracted into).',
        },
      );
    return new DirArchive(abs, entries);
  }
  const paths = await findParts(abs);
  const file = await PartedFile.open(paths);
  try {
    const compression = compressionOf(await file.read(0, 4));
    if (compression !== 'none') {
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${input} is ${compression}-compressed; this command reads images by offset out of an uncompressed tar`,
        {
          hint: `\`sealift load\` and \`sealift bundle verify\` read compressed bundles as they are; for this command decompress it first (${compression === 'gzip' ? 'gunzip -k' : 'zstd -d'} ${input}).`,
          details: { compression },
        },
      );
    }
    const entries = await indexTar(file, input);
    if (!entries.has(BUNDLE_INDEX_FILE))
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${input} is a tar but not a sealift bundle: it has no ${BUNDLE_INDEX_FILE}`,
        {
          hint: 'Give the .tar that `sealift bundle` wrote.',
        },
      );
    return new TarArchive(input, file, entries);
  } catch (e) {
    await file.close();
    throw e;
  }
}
