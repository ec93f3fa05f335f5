// The bundle file: checksums.sha256, bundle.json and the site tools first, then the site files,
// image lists and the OCI layout, in one tar laid out in advance (tar.ts) and written once: every
// file straight at its offset (tar-file.ts), blobs as they arrive from the registry, verified as
// they stream, laid out in the order they are fetched; checksums.sha256 and bundle.json (known
// before the first blob, since a blob's name is its digest) written first; the tar's own sha256
// computed front to back as its bytes become final; temp names renamed only when all is there,
// split into parts as it is written. A compressed bundle (--compress) is that tar streamed in order through
// gzip or zstd into <name>.tar.gz|.tar.zst (and parts): a compressed stream has no offsets to
// write at, so the tar is written once uncompressed beside it first. Every output file gets a line in
// <name>.tar[.gz|.zst].sha256 (sha256sum -c format).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import * as zlib from 'node:zlib';
import pLimit from 'p-limit';
import { ensureFreeSpace, reportDiskFull } from '../disk.ts';
import { SealiftError, isSealiftError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { noEvents, type EventSink } from '../events.ts';
import type { ImageTarget } from '../oci/copy.ts';
import { isTemporaryNetworkError } from '../oci/transport.ts';
import type { Descriptor } from '../oci/types.ts';
import { VerifyStream } from '../oci/verify.ts';
import {
  BLOB_PATH_RE,
  BUNDLE_INDEX_FILE,
  CHECKSUMS_FILE,
  blobPath,
  formatChecksums,
  isWorkFileName,
  SIGNATURE_FILE,
  bundleTarOrder,
} from '../bundle-format/index.ts';
import { layoutTar } from './tar.ts';
import { PlannedTar, swapIn, type WrittenPart } from './tar-file.ts';

/** Every regular file under `root` as a relative POSIX path, sorted; ingest and temp files excluded. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const rel = relative(root, join(e.parentPath, e.name)).split(sep).join('/');
    if (rel.split('/').some(isWorkFileName)) continue;
    out.push(rel);
  }
  return out.sort();
}

export async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(path)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hex: h.digest('hex'), size };
}

/** One file of the bundle: where it goes in the tar, what it hashes to, where its bytes come from. */
export interface PackEntry {
  path: string;
  size: number;
  mode: number;
  /** hex sha256 of the contents */
  sha256: string;
  /** a local file to copy (verified against sha256 as it is copied); unset: an image copy writes it (a blob) */
  from?: string;
}

/**
 * The entries of every file under `root` (checksums.sha256 excepted, when `withChecksums` is
 * false). A blob's name is its digest and it reached that name only through a verified write,
 * so its sha256 comes from the name; other files are hashed.
 */
export async function entriesOf(root: string, opts: { withChecksums?: boolean } = {}): Promise<PackEntry[]> {
  const out: PackEntry[] = [];
  for (const path of await listFiles(root)) {
    if (!opts.withChecksums && (path === CHECKSUMS_FILE || path === SIGNATURE_FILE)) continue;
    const from = join(root, ...path.split('/'));
    const st = await stat(from);
    const blob = BLOB_PATH_RE.exec(path);
    out.push({
      path,
      size: st.size,
      mode: st.mode & 0o111 ? 0o755 : 0o644,
      sha256: blob ? (blob[1] ?? '') : (await sha256File(from)).hex,
      from,
    });
  }
  return out;
}

/**
 * checksums.sha256 of every file of the bundle but itself and its signature: the files under
 * `root` and `extra` (files the bundle carries that are not under root: blobs still to be
 * fetched, site tools copied from where they are built). Sorted by path.
 */
export async function writeChecksums(
  root: string,
  extra: readonly Pick<PackEntry, 'path' | 'sha256' | 'size'>[] = [],
  /** files under root that the bundle does not carry (an incremental bundle's base manifests) */
  exclude: ReadonlySet<string> = new Set(),
): Promise<{ files: number; bytes: number }> {
  const lines = [...(await entriesOf(root)), ...extra]
    .filter((e) => e.path !== CHECKSUMS_FILE && e.path !== SIGNATURE_FILE && !exclude.has(e.path))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  await writeFileAtomic(
    join(root, CHECKSUMS_FILE),
    formatChecksums(lines.map((l) => ({ path: l.path, hex: l.sha256 }))),
  );
  return { files: lines.length, bytes: lines.reduce((n, l) => n + l.size, 0) };
}

export type Compression = 'none' | 'gzip' | 'zstd';
export const COMPRESSIONS: readonly Compression[] = ['none', 'gzip', 'zstd'];
export const COMPRESSED_SUFFIX: Record<Compression, string> = { none: '', gzip: '.gz', zstd: '.zst' };

export interface PackOptions {
  /** the assembled bundle directory */
  root: string;
  /** output file without parts suffix, e.g. bundles/airgap.tar */
  output: string;
  /** @deprecated compress: 'gzip' */
  gzip?: boolean;
  compress?: Compression;
  /** bytes per part; unset = one file */
  splitSize?: number;
  onEvent?: EventSink;
}

export interface PackedFile {
  path: string;
  size: number;
  sha256: string;
}

export interface PackResult {
  /** the tar (or compressed tar) file, or the parts in order */
  files: PackedFile[];
  /** the sha256sum list beside them */
  checksumFile: string;
  /** bytes of the bundle file(s) */
  bytes: number;
  compression: Compression;
  /** bytes of the tar before compression (= bytes when uncompressed) */
  tarBytes: number;
  /** bytes an earlier, killed run had already written into the tar and this one kept */
  keptBytes: number;
}

/** Writes a stream into one file or fixed-size parts, hashing each; all under temp names. */
async function writeParts(
  stream: Readable,
  finalName: string,
  splitSize: number | undefined,
  onBytes: (n: number) => void,
): Promise<(WrittenPart & { tmp: string })[]> {
  const parts: (WrittenPart & { tmp: string })[] = [];
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  let hash = createHash('sha256');
  let size = 0;
  const startPart = async () => {
    const idx = parts.length;
    const path = splitSize ? `${finalName}.part-${String(idx).padStart(3, '0')}` : finalName;
    const tmp = join(dirname(path), `.${basename(path)}.tmp`);
    fh = await open(tmp, 'w');
    hash = createHash('sha256');
    size = 0;
    parts.push({ tmp, path, size: 0, sha256: '' });
  };
  const endPart = async () => {
    if (!fh) return;
    await fh.sync();
    await fh.close();
    fh = undefined;
    const p = parts[parts.length - 1]!;
    p.size = size;
    p.sha256 = hash.digest('hex');
  };
  try {
    await startPart();
    for await (const raw of stream) {
      let chunk = raw as Buffer;
      while (chunk.length > 0) {
        if (splitSize && size >= splitSize) {
          await endPart();
          await startPart();
        }
        const room = splitSize ? splitSize - size : chunk.length;
        const piece = chunk.subarray(0, room);
        chunk = chunk.subarray(piece.length);
        await fh!.write(piece);
        hash.update(piece);
        size += piece.length;
        onBytes(piece.length);
      }
    }
    await endPart();
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await Promise.all(parts.map((p) => rm(p.tmp, { force: true })));
    throw e;
  }
  return parts;
}

export function compressor(kind: Exclude<Compression, 'none'>): NodeJS.ReadWriteStream {
  if (kind === 'gzip') return createGzip({ level: 6 });
  const create = (zlib as { createZstdCompress?: (o: object) => NodeJS.ReadWriteStream }).createZstdCompress;
  if (!create)
    throw new SealiftError('USAGE', `--compress zstd needs Node.js 22.15 or newer (this is ${process.version})`, {
      hint: 'Run sealift on a newer Node (the single executable has one), or use --compress gzip.',
    });
  const c = zlibConstants as unknown as Record<string, number>;
  return create({ params: { [c.ZSTD_c_compressionLevel!]: 3, [c.ZSTD_c_checksumFlag!]: 1 } });
}

/** The image copies write blobs into the tar through this target; every other file is copied by the packer. */
function tarTarget(
  tar: PlannedTar,
  local: ReadonlySet<string>,
  reuse?: (path: string, size: number) => Readable | undefined,
): ImageTarget {
  return {
    name: tar.output,
    // a blob the packer copies from a local file counts as present for the image copies
    hasBlob: async (desc) => local.has(blobPath(desc.digest)) || tar.isDone(blobPath(desc.digest)),
    async pushBlob(desc, openBlob, _signal, openFrom) {
      const path = blobPath(desc.digest);
      if (tar.file(path).size !== desc.size)
        throw new SealiftError(
          'INTERNAL',
          `${path}: the layout has ${tar.file(path).size} bytes, the descriptor ${desc.size}`,
        );
      if (tar.isDone(path)) return 'existed';
      // the same blob in the bundle this one replaces: a local copy, verified like a download;
      // bytes that do not match are no reason to fail, the registry still has the blob
      const previous = reuse?.(path, desc.size);
      if (previous) {
        try {
          await writeBlob(tar, desc, () => Promise.resolve(previous));
          await tar.markDone(path);
          return 'existed';
        } catch (e) {
          if (!isSealiftError(e)) throw e;
          tar.forget(path);
        }
      }
      await writeBlob(tar, desc, openBlob, openFrom);
      await tar.markDone(path);
      return 'written';
    },
    // manifests are small files of the work layout, copied with the rest
    async pushManifest() {},
  };
}

/**
 * Streams a blob into its place: continues the bytes already there (this run's or a killed
 * run's) when the source serves ranges, hashing them again as the start of the whole blob; a
 * continued blob whose digest then differs starts over once from byte 0.
 */
async function writeBlob(
  tar: PlannedTar,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  openBlob: () => Promise<Readable>,
  openFrom?: (offset: number) => Promise<Readable | undefined>,
): Promise<void> {
  const path = blobPath(desc.digest);
  const where = `blob ${desc.digest}`;
  for (let attempt = 0; ; attempt++) {
    const have = tar.resumable(path);
    let src: Readable | undefined;
    let hash = createHash('sha256');
    if (openFrom && have > 0 && have < desc.size) {
      for await (const c of tar.read(path, have)) hash.update(c as Buffer);
      src = await openFrom(have);
    }
    const from = src ? have : 0;
    if (!src) {
      hash = createHash('sha256');
      src = await openBlob();
    }
    // a full read from a source that verifies this very descriptor needs no second hash
    const trusted = from === 0 && src instanceof VerifyStream && src.verifies(desc);
    const stages: NodeJS.ReadWriteStream[] = trusted
      ? []
      : [new VerifyStream(desc, { where, ...(from ? { resume: { hash, received: from } } : {}) })];
    try {
      await pipeline([src, ...stages, tar.writer(path, from)]);
      return;
    } catch (e) {
      const network = (isSealiftError(e) && e.code === 'NETWORK_ERROR') || isTemporaryNetworkError(e);
      if (!network) tar.forget(path);
      if (from > 0 && attempt === 0 && isSealiftError(e) && e.code === 'DIGEST_MISMATCH') continue;
      throw e;
    }
  }
}

/** A local file into its place, verified against the sha256 the checksums list was made with. */
async function copyFileInto(tar: PlannedTar, e: PackEntry & { from: string }): Promise<void> {
  if (tar.isDone(e.path)) return;
  const verify = new VerifyStream(
    { digest: `sha256:${e.sha256}` as Descriptor['digest'], size: e.size },
    {
      where: `${e.from} (${e.path} of the bundle; it changed while the bundle was made)`,
    },
  );
  await pipeline(createReadStream(e.from, { highWaterMark: 1 << 20 }), verify, tar.writer(e.path));
  await tar.markDone(e.path);
}

export interface PackEntriesOptions {
  /** output file without parts or compression suffix, e.g. bundles/airgap.tar */
  output: string;
  /** every file of the bundle, checksums.sha256 and bundle.json included (their order: bundleTarOrder) */
  entries: readonly PackEntry[];
  compress?: Compression;
  splitSize?: number;
  /** writes the entries without `from` (the blobs) through the target, e.g. by copying images into it */
  writeImages?: (target: ImageTarget) => Promise<void>;
  /** a blob's bytes from somewhere local (the bundle an earlier run wrote), tried before the target's source */
  reuse?: (path: string, size: number) => Readable | undefined;
  /**
   * digests in the order `writeImages` fetches them: their blobs are laid out in that order (the
   * others after them, by path), so the tar's bytes become final front to back while it is
   * written and its running sha256 keeps up
   */
  blobOrder?: readonly string[];
  onEvent?: EventSink;
}

/**
 * The order of the files in the tar: bundleTarOrder over the paths sorted, where the blobs that
 * `blobOrder` names sort among the blobs first, in its order. A function of the contents alone
 * (the same image list and manifests give the same order), so a re-run lays the tar out as the
 * killed run did.
 */
export function packOrder(paths: Iterable<string>, blobOrder: readonly string[] = []): string[] {
  const rank = new Map<string, number>();
  for (const d of blobOrder) if (!rank.has(d)) rank.set(d, rank.size);
  const key = (path: string) => {
    const blob = BLOB_PATH_RE.exec(path);
    const r = blob ? rank.get(`sha256:${blob[1]}`) : undefined;
    // '#' sorts before every hex digit: the ranked blobs first among the blobs
    return r === undefined ? path : `${path.slice(0, path.length - 64)}#${String(r).padStart(12, '0')}`;
  };
  const keyed = [...paths].map((p) => [key(p), p] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return bundleTarOrder(keyed.map(([, p]) => p));
}

/**
 * Lays the tar out, refuses before writing a byte when the disk cannot hold it, writes every
 * file once at its offset (blobs through `writeImages`, the local files alongside, the head
 * files last), then renames it in (or compresses it into the .tar.gz / .tar.zst).
 */
export async function packEntries(opts: PackEntriesOptions): Promise<PackResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const compress = opts.compress ?? 'none';
  const dir = dirname(opts.output);
  const byPath = new Map(opts.entries.map((e) => [e.path, e]));
  for (const must of [BUNDLE_INDEX_FILE, CHECKSUMS_FILE])
    if (!byPath.has(must)) throw new SealiftError('INTERNAL', `the bundle has no ${must} to pack`);
  // the layout (every offset) is a function of the contents alone, whatever order the entries
  // came in, so a re-run lays the tar out as the killed run did and keeps its blobs
  const ordered = packOrder(byPath.keys(), opts.blobOrder).map((p) => byPath.get(p)!);
  const layout = layoutTar(ordered);
  const final = `${opts.output}${COMPRESSED_SUFFIX[compress]}`;
  const what = `packing ${basename(final)}`;
  // a compressed bundle is written from an uncompressed tar beside it, in one piece
  const tar = await PlannedTar.prepare(
    opts.output,
    layout,
    new Map(ordered.map((e) => [e.path, e.sha256])),
    compress === 'none' ? opts.splitSize : undefined,
    { hash: compress === 'none' },
  );
  // the tar's size is known now: refuse before writing a byte when it cannot fit (compressed:
  // the tar and, at worst, as much again)
  await ensureFreeSpace(dir, (compress === 'none' ? 1 : 2) * layout.size - tar.keptBytes, what);
  return reportDiskFull(dir, what, async () => {
    await tar.open();
    try {
      const head = new Set([CHECKSUMS_FILE, SIGNATURE_FILE, BUNDLE_INDEX_FILE]);
      const local = ordered.filter((e): e is PackEntry & { from: string } => e.from !== undefined);
      const localPaths = new Set(local.map((e) => e.path));
      const copies = pLimit(2);
      onEvent({ type: 'phase', name: 'writing the bundle tar', total: ordered.length });
      if (tar.keptBytes > 0)
        onEvent({
          type: 'info',
          message: `${opts.output}: continuing an earlier run's tar (${tar.keptBytes} bytes of it kept)`,
          fields: { keptBytes: tar.keptBytes },
        });
      // checksums.sha256, its signature and bundle.json first: they open the tar, and the running
      // sha256 starts at byte 0 (all are made before the first blob: a blob's name is its
      // digest; the tar stays under its temp name until every file is in)
      for (const e of local.filter((x) => head.has(x.path))) await copyFileInto(tar, e);
      await Promise.all([
        ...local.filter((e) => !head.has(e.path)).map((e) => copies(() => copyFileInto(tar, e))),
        opts.writeImages?.(tarTarget(tar, localPaths, opts.reuse)),
      ]);
      const missing = ordered.filter((e) => !tar.isDone(e.path));
      if (missing.length)
        throw new SealiftError('INTERNAL', `${missing.length} files were not written, e.g. ${missing[0]!.path}`);
      onEvent({ type: 'phase', name: 'checking the bundle file' });
      if (compress === 'none') {
        const parts = await tar.complete();
        await tar.commit(parts);
        return await finish(parts, layout.size, tar.keptBytes);
      }
      await tar.complete();
      onEvent({ type: 'phase', name: `compressing the bundle (${compress})` });
      const tmpTar = join(dir, `.${basename(opts.output)}.tmp`);
      const stream = createReadStream(tmpTar, { highWaterMark: 1 << 20 }).pipe(compressor(compress));
      const parts = await writeParts(stream as unknown as Readable, final, opts.splitSize, () => undefined);
      await swapIn(final, parts);
      await tar.discard();
      return await finish(parts, layout.size, tar.keptBytes);
    } finally {
      await tar.close();
    }
  });

  async function finish(parts: readonly WrittenPart[], tarBytes: number, keptBytes: number): Promise<PackResult> {
    const checksumFile = `${final}.sha256`;
    await writeFileAtomic(checksumFile, parts.map((p) => `${p.sha256}  ${basename(p.path)}\n`).join(''));
    return {
      files: parts.map((p) => ({ path: p.path, size: p.size, sha256: p.sha256 })),
      checksumFile,
      bytes: parts.reduce((n, p) => n + p.size, 0),
      compression: compress,
      tarBytes,
      keptBytes,
    };
  }
}

/** Tars a bundle directory (checksums, signature, bundle.json first: bundleTarOrder) into `output`, atomically. */
export async function packBundle(opts: PackOptions): Promise<PackResult> {
  const files = await listFiles(opts.root);
  for (const must of [BUNDLE_INDEX_FILE, CHECKSUMS_FILE]) {
    if (!files.includes(must)) throw new SealiftError('INTERNAL', `${opts.root} has no ${must} to pack`);
  }
  const output = opts.output.replace(/\.(gz|zst)$/, '');
  return packEntries({
    output,
    entries: await entriesOf(opts.root, { withChecksums: true }),
    compress: opts.compress ?? (opts.gzip ? 'gzip' : 'none'),
    ...(opts.splitSize ? { splitSize: opts.splitSize } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
}

/** Parses `--split-size` values: 4G, 500M, 1024K, 2GiB, or bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?$/i.exec(s.trim());
  if (!m)
    throw new SealiftError('USAGE', `invalid size "${s}"`, {
      hint: 'Write a size like 4G, 700M or 1073741824 (bytes).',
    });
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'
  ];
  const n = Math.floor(Number(m[1]) * mult);
  if (n < 1024 * 1024)
    throw new SealiftError('USAGE', `split size ${s} is below 1M`, {
      hint: 'Parts must be at least 1M; use e.g. --split-size 4G.',
    });
  return n;
}
