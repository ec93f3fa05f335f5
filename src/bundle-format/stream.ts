// A bundle read once, front to back: a tar (or its split parts), a pipe (`load -`), a zstd or
// gzip compressed tar stream (told by its magic bytes, split parts of it too), or an extracted
// directory, yielded entry by entry in tar order. A stream's headers go through the one tar
// walker (archive.ts walkTar) over forward-only bytes, so it gets every rule a file does; a file
// is indexed by the same walker first and its entries are then read by offset, each once.
// Nothing is kept: each entry's bytes are handed out once, and skipped when the reader does not
// want them.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { SealiftError } from '../errors.ts';
import {
  compressionOf,
  compressionOfFile,
  findParts,
  invalid,
  lookupIn,
  notATar,
  openBundleArchive,
  smallEntry,
  statBundle,
  walkTar,
  type ArchiveEntry,
  type BundleArchive,
  type Compression,
  type TarBytes,
} from './archive.ts';
import { bundleTarOrder } from './names.ts';

const CHUNK = 1 << 20;

/** One entry as it passes: `body()` at most once, and read (or left: it is skipped) before the next. */
export interface StreamedEntry extends ArchiveEntry {
  body(): Readable;
}

export interface BundleStream {
  /** what the user gave, for messages (`-` is "stdin") */
  readonly location: string;
  readonly kind: 'tar' | 'parts' | 'directory' | 'stdin';
  readonly compression: Compression;
  /** the tar or its parts on disk, in order; empty for a directory or stdin */
  readonly files: readonly string[];
  /**
   * The random-access index of an uncompressed tar, its parts, or a directory: its headers were
   * walked (every rule checked) before a byte of data is read. Undefined for a pipe or a
   * compressed bundle, which can only be read once, in order.
   */
  readonly archive: BundleArchive | undefined;
  /** entries' bodies are independent reads by offset: several may be read at once, in any order */
  readonly randomAccess: boolean;
  entries(): AsyncGenerator<StreamedEntry>;
  close(): Promise<void>;
}

/** A compressed stream is refused with the Node version it needs, where this Node lacks zstd. */
function decompressor(compression: Compression, location: string): NodeJS.ReadWriteStream | undefined {
  if (compression === 'gzip') return zlib.createGunzip({ chunkSize: CHUNK });
  if (compression === 'zstd') {
    const make = (zlib as { createZstdDecompress?: (o?: object) => NodeJS.ReadWriteStream }).createZstdDecompress;
    if (!make)
      throw new SealiftError(
        'TOOL_MISSING',
        `${location} is zstd-compressed, and this Node (${process.version}) has no zstd in node:zlib`,
        {
          hint: 'Run sealift on Node 22.15 or newer (24 is what scripts/setup.sh installs), or decompress the bundle first (zstd -d).',
        },
      );
    return make({ chunkSize: CHUNK });
  }
  return undefined;
}

/**
 * Forward-only bytes over a stream: the walker reads a header, the entry's body takes its bytes
 * as they arrive (nothing accumulates), and whatever the reader left is skipped on the way to the
 * next header. Reads of the underlying stream are serialized, so an abandoned body cannot race
 * the walker; a body takes bytes only inside its own range.
 */
class ForwardBytes implements TarBytes {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  /** stream offset of buf[0] */
  private pos = 0;
  private ended = false;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly location: string;
  private readonly compression: Compression;
  total: number | undefined = undefined;

  constructor(source: Readable, location: string, compression: Compression) {
    this.it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.location = location;
    this.compression = compression;
  }

  /** one more chunk into the buffer; false at the end of the stream */
  private fill(): Promise<boolean> {
    const run = this.lock.then(async () => {
      if (this.ended) return false;
      let r: IteratorResult<Buffer>;
      try {
        r = await this.it.next();
      } catch (e) {
        if (e instanceof SealiftError) throw e;
        throw invalid(
          this.location,
          this.compression === 'none'
            ? `reading the bundle failed: ${(e as Error).message}`
            : `the ${this.compression} stream is damaged or cut short: ${(e as Error).message}`,
          'The copy of the bundle is incomplete or damaged. Copy it again (every part, if it was split), or send the whole stream again.',
        );
      }
      if (r.done) {
        this.ended = true;
        this.total = this.pos + this.buf.length;
        return false;
      }
      this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
      return true;
    });
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async skipTo(off: number): Promise<void> {
    if (off < this.pos) throw new SealiftError('INTERNAL', `the bundle stream was asked to go back to byte ${off}`);
    while (this.pos < off) {
      if (this.buf.length === 0 && !(await this.fill())) return;
      const n = Math.min(off - this.pos, this.buf.length);
      this.buf = this.buf.subarray(n);
      this.pos += n;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.skipTo(offset);
    while (this.pos === offset && this.buf.length < length && (await this.fill()));
    if (this.pos !== offset) return Buffer.alloc(0);
    return Buffer.from(this.buf.subarray(0, length));
  }

  async *body(entry: ArchiveEntry): AsyncGenerator<Buffer> {
    await this.skipTo(entry.offset);
    let at = entry.offset;
    const end = entry.offset + entry.size;
    while (at < end) {
      if (this.buf.length === 0 && !(await this.fill()))
        throw invalid(
          this.location,
          `the archive is truncated: "${entry.path}" ends after ${at - entry.offset} of its ${entry.size} bytes`,
          'The copy of the bundle is incomplete (a cut transfer or pipe, a missing part). Copy it again, or send the whole stream again; a re-run continues where this one stopped.',
        );
      if (this.pos !== at) return; // the walker moved on: this body was abandoned
      const piece = this.buf.subarray(0, Math.min(end - at, this.buf.length));
      this.buf = this.buf.subarray(piece.length);
      this.pos += piece.length;
      at += piece.length;
      yield piece;
    }
  }

  /** reads to the end (a compressed stream checks its own trailer there); what follows the tar is ignored */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) {
      this.pos += this.buf.length;
      this.buf = Buffer.alloc(0);
    }
  }
}

/** The files one after another, as one stream (split parts are one tar, or one compressed stream). */
function concatFiles(files: readonly string[]): Readable {
  if (files.length === 1) return createReadStream(files[0]!, { highWaterMark: CHUNK });
  const out = new PassThrough({ highWaterMark: CHUNK });
  void (async () => {
    try {
      for (const f of files) {
        for await (const c of createReadStream(f, { highWaterMark: CHUNK })) {
          if (!out.write(c)) await new Promise((r) => out.once('drain', r));
          if (out.destroyed) return;
        }
      }
      out.end();
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return out;
}

/** The first bytes of a stream, put back: its magic decides how it is read. */
async function peek(source: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const got: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    got.push(r.value);
    have += r.value.length;
  }
  const head = Buffer.concat(got);
  const stream = Readable.from(
    (async function* () {
      if (head.length > 0) yield head;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })(),
    { objectMode: false, highWaterMark: CHUNK },
  );
  return { head, stream };
}

function tarStream(bytes: ForwardBytes, location: string): () => AsyncGenerator<StreamedEntry> {
  return async function* () {
    let any = false;
    for await (const e of walkTar(bytes, location)) {
      any = true;
      if (e.type === 'directory') continue;
      let opened = false;
      yield {
        ...e,
        body: () => {
          if (opened) throw new SealiftError('INTERNAL', `${location}: "${e.path}" was read twice from the stream`);
          opened = true;
          return Readable.from(bytes.body(e), { objectMode: false, highWaterMark: CHUNK });
        },
      };
    }
    if (!any) throw notATar(location, 'it holds no entries');
    await bytes.drain();
  };
}

/**
 * Opens a bundle for one read in tar order: a tar, the first of its parts, `-` (stdin), a
 * compressed tar or its parts, or an extracted directory (its files in tar order).
 */
export async function openBundleStream(input: string, stdin: Readable = process.stdin): Promise<BundleStream> {
  if (input === '-') {
    if ((stdin as { isTTY?: boolean }).isTTY)
      throw new SealiftError('USAGE', '`-` reads the bundle from stdin, and stdin is a terminal', {
        hint: 'Pipe the bundle in: cat airgap.tar | sealift load - ... (or ssh build-host cat airgap.tar | ...), or give the bundle file.',
      });
    const { head, stream } = await peek(stdin, 4);
    if (head.length === 0)
      throw notATar('stdin', 'the stream is empty (nothing was piped in: `cat bundle.tar | sealift load - ...`)');
    return tarBundleStream({
      location: 'stdin',
      kind: 'stdin',
      files: [],
      raw: stream,
      compression: compressionOf(head),
    });
  }
  const st = await statBundle(
    input,
    'Give the bundle .tar (or .tar.zst, .tar.gz), the first part of a split bundle (.part-000), a directory holding an extracted bundle, or - to read it from stdin.',
  );
  if (st.isDirectory()) {
    const archive = await openBundleArchive(input);
    return indexedStream(archive, 'directory');
  }
  const files = await findParts(resolve(input));
  const compression = await compressionOfFile(files[0]!);
  if (compression === 'none') {
    // an uncompressed tar is indexed first (headers only: every rule of the walker checked, the
    // whole listing known before anything is read or pushed); then each entry is read once, by offset
    const archive = await openBundleArchive(input);
    return indexedStream(archive, files.length > 1 ? 'parts' : 'tar');
  }
  return tarBundleStream({
    location: input,
    kind: files.length > 1 ? 'parts' : 'tar',
    files,
    raw: concatFiles(files),
    compression,
  });
}

/** An indexed bundle (a tar, its parts, a directory) in tar order: every entry's bytes read once, by offset. */
function indexedStream(archive: BundleArchive, kind: 'tar' | 'parts' | 'directory'): BundleStream {
  const order =
    kind === 'directory'
      ? bundleTarOrder([...archive.entries.values()].filter((e) => e.type === 'file').map((e) => e.path))
      : [...archive.entries.values()].filter((e) => e.type === 'file').map((e) => e.path);
  return {
    location: archive.location,
    kind,
    compression: 'none',
    files: archive.files,
    archive,
    randomAccess: true,
    entries: async function* () {
      for (const path of order) {
        const e = archive.lookup(path)!;
        yield { ...e, body: () => archive.open(path) };
      }
    },
    close: () => archive.close(),
  };
}

/** A tar's bytes (decompressed first when its magic says so) read once through the walker. */
function tarBundleStream(o: {
  location: string;
  kind: BundleStream['kind'];
  files: string[];
  raw: Readable;
  compression: Compression;
}): BundleStream {
  const compression = o.compression;
  const unpack = decompressor(compression, o.location);
  const source = unpack ? (o.raw.pipe(unpack) as unknown as Readable) : o.raw;
  if (unpack) o.raw.on('error', (e) => source.destroy(e));
  const bytes = new ForwardBytes(source, o.location, compression);
  return {
    location: o.location,
    kind: o.kind,
    compression,
    files: o.files,
    archive: undefined,
    randomAccess: false,
    entries: tarStream(bytes, o.location),
    close: async () => {
      source.destroy();
      o.raw.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What a streamed read leaves: the listing, the small files it kept, the files it spooled

/**
 * The bundle after one read, as the random-access interface: every entry's path and size, the
 * bytes of the small files the reader kept (bundle.json, the layout's index, manifests), and the
 * files it wrote to disk on the way (site files). Anything else passed by and is not here to read.
 */
export class StreamedArchive implements BundleArchive {
  readonly location: string;
  readonly kind: 'tar' | 'parts' | 'directory';
  readonly files: readonly string[];
  readonly entries = new Map<string, ArchiveEntry>();
  private readonly kept = new Map<string, Buffer>();
  private readonly spooled = new Map<string, string>();
  constructor(stream: Pick<BundleStream, 'location' | 'kind' | 'files'>) {
    this.location = stream.location;
    this.kind = stream.kind === 'stdin' ? 'tar' : stream.kind;
    this.files = stream.files;
  }
  add(entry: ArchiveEntry, content?: { bytes: Buffer } | { file: string }): void {
    this.entries.set(entry.path, { path: entry.path, type: entry.type, offset: entry.offset, size: entry.size });
    if (content && 'bytes' in content) this.kept.set(entry.path, content.bytes);
    else if (content) this.spooled.set(entry.path, content.file);
  }
  /** the file a spooled entry was written to (verified against checksums.sha256 on the way) */
  spooledFile(path: string): string | undefined {
    return this.spooled.get(path);
  }
  lookup(path: string): ArchiveEntry | undefined {
    return lookupIn(this.entries, path, this.location);
  }
  private gone(path: string): SealiftError {
    return new SealiftError(
      'INTERNAL',
      `${this.location}: "${path}" streamed past and was not kept (the bundle was read once, in order)`,
    );
  }
  open(path: string): Readable {
    const bytes = this.kept.get(path);
    if (bytes) return Readable.from([bytes]);
    const file = this.spooled.get(path);
    if (file) return createReadStream(file, { highWaterMark: CHUNK });
    if (this.lookup(path)?.size === 0) return Readable.from([]);
    throw this.gone(path);
  }
  async readSmall(path: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    const e = smallEntry(this, path, maxBytes);
    const bytes = this.kept.get(path);
    if (bytes) return bytes;
    const file = this.spooled.get(path);
    if (file) return readFile(file);
    if (e.size === 0) return Buffer.alloc(0);
    throw this.gone(path);
  }
  async close(): Promise<void> {}
}
