// The bundle file: checksums.sha256, bundle.json and the site tools (site-tools.ts) first, then the site files, image lists and
// the OCI layout, in one tar (uncompressed by default: layers are compressed already), written
// to temp names and renamed only when complete, optionally gzipped and split into parts; every
// output file gets a line in <name>.tar[.gz].sha256 (sha256sum -c format).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { create as tarCreate } from 'tar';
import { SealiftError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { noEvents, type EventSink } from '../events.ts';
import {
  BLOB_PATH_RE,
  BUNDLE_INDEX_FILE,
  CHECKSUMS_FILE,
  formatChecksums,
  isWorkFileName,
  SIGNATURE_FILE,
  bundleTarOrder,
} from '../bundle-format/index.ts';

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

/**
 * checksums.sha256 of every file but itself. A blob's name is its digest and it reached that
 * name only through a verified write, so its line comes from the name; other files are hashed.
 */
export async function writeChecksums(root: string): Promise<{ files: number; bytes: number }> {
  const files = (await listFiles(root)).filter((f) => f !== CHECKSUMS_FILE && f !== SIGNATURE_FILE);
  const lines: { path: string; hex: string }[] = [];
  let bytes = 0;
  for (const f of files) {
    const blob = BLOB_PATH_RE.exec(f);
    if (blob) {
      lines.push({ path: f, hex: blob[1] ?? '' });
      bytes += (await stat(join(root, f))).size;
    } else {
      const { hex, size } = await sha256File(join(root, f));
      lines.push({ path: f, hex });
      bytes += size;
    }
  }
  await writeFileAtomic(join(root, CHECKSUMS_FILE), formatChecksums(lines));
  return { files: files.length, bytes };
}

export interface PackOptions {
  /** the assembled bundle directory */
  root: string;
  /** output file without parts suffix, e.g. bundles/airgap.tar */
  output: string;
  gzip?: boolean;
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
  /** the tar (or gz) file, or the parts in order */
  files: PackedFile[];
  /** the sha256sum list beside them */
  checksumFile: string;
  bytes: number;
}

/** Writes a stream into one file or fixed-size parts, hashing each; all under temp names. */
async function writeParts(
  stream: Readable,
  finalName: string,
  splitSize: number | undefined,
  onBytes: (n: number) => void,
): Promise<{ tmp: string; final: string; size: number; sha256: string }[]> {
  const parts: { tmp: string; final: string; size: number; sha256: string }[] = [];
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  let hash = createHash('sha256');
  let size = 0;
  const startPart = async () => {
    const idx = parts.length;
    const final = splitSize ? `${finalName}.part-${String(idx).padStart(3, '0')}` : finalName;
    const tmp = join(dirname(final), `.${basename(final)}.tmp`);
    fh = await open(tmp, 'w');
    hash = createHash('sha256');
    size = 0;
    parts.push({ tmp, final, size: 0, sha256: '' });
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

/** Tars `root` (checksums, signature, bundle.json first: bundleTarOrder) into `output`, atomically. */
export async function packBundle(opts: PackOptions): Promise<PackResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const files = await listFiles(opts.root);
  for (const must of [BUNDLE_INDEX_FILE, CHECKSUMS_FILE]) {
    if (!files.includes(must)) throw new SealiftError('INTERNAL', `${opts.root} has no ${must} to pack`);
  }
  const ordered = bundleTarOrder(files);
  const total = (await Promise.all(ordered.map((f) => stat(join(opts.root, f))))).reduce((n, s) => n + s.size, 0);
  onEvent({ type: 'phase', name: 'packing bundle', total: 1 });
  onEvent({ type: 'blob:start', digest: 'tar', size: total });
  const tar = tarCreate(
    { cwd: opts.root, portable: true, mtime: new Date(0), noDirRecurse: true, maxReadSize: 1 << 20 },
    ordered,
  ) as unknown as Readable;
  const stream = opts.gzip ? tar.pipe(createGzip()) : tar;
  if (opts.gzip) tar.on('error', (e) => stream.destroy(e));
  const output = opts.gzip && !opts.output.endsWith('.gz') ? `${opts.output}.gz` : opts.output;
  let written = 0;
  const parts = await writeParts(stream, output, opts.splitSize, (n) => {
    written += n;
    if (!opts.gzip) onEvent({ type: 'blob:progress', digest: 'tar', bytes: n });
  });
  // swap in: remove what an earlier run left under these names, then rename
  const dir = dirname(output);
  const stale = (await readdir(dir)).filter((n) => n === basename(output) || n.startsWith(`${basename(output)}.part-`));
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true })));
  for (const p of parts) await rename(p.tmp, p.final);
  const checksumFile = `${output}.sha256`;
  await writeFileAtomic(checksumFile, parts.map((p) => `${p.sha256}  ${basename(p.final)}\n`).join(''));
  onEvent({ type: 'blob:done', digest: 'tar', size: total });
  return { files: parts.map((p) => ({ path: p.final, size: p.size, sha256: p.sha256 })), checksumFile, bytes: written };
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
