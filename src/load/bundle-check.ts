// Loading means verifying (zarf's validatePackageIntegrity): before anything leaves the bundle,
// every file listed in checksums.sha256 must be there and hash to its line, no file may be
// unlisted, and a blob's name must be its digest. All differences are collected and named.
import { createHash } from 'node:crypto';
import { open, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { SealiftError } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { progressInSteps } from '../oci/copy.ts';
import type { ArchiveEntry, BundleArchive } from './tar-reader.ts';

export const CHECKSUMS_FILE = 'checksums.sha256';
const BLOB_PATH_RE = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/;

/** `sha256sum` format: `<64 hex>  <path>` or `<64 hex> *<path>`, one per line. */
export function parseChecksums(text: string, location: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const m = /^([a-f0-9]{64}) [ *](.+)$/.exec(line);
    if (!m) {
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${location}: ${CHECKSUMS_FILE} line ${i + 1} is not "<sha256>  <path>": "${line.slice(0, 120)}"`,
        {
          hint: 'The checksum list is damaged; copy the bundle again.',
        },
      );
    }
    const [, hex = '', path = ''] = m;
    const p = path.replace(/^\.\//, '');
    if (out.has(p))
      throw new SealiftError('BUNDLE_INVALID', `${location}: ${CHECKSUMS_FILE} lists "${p}" twice (line ${i + 1})`);
    out.set(p, hex);
  });
  return out;
}

export interface ChecksumDifference {
  path: string;
  problem: 'missing' | 'unlisted' | 'modified' | 'misnamed-blob';
  expected?: string;
  got?: string;
}

export interface ChecksumResult {
  files: number;
  bytes: number;
}

function describe(d: ChecksumDifference): string {
  switch (d.problem) {
    case 'missing':
      return `${d.path}: listed in ${CHECKSUMS_FILE} but not in the bundle`;
    case 'unlisted':
      return `${d.path}: in the bundle but not listed in ${CHECKSUMS_FILE}`;
    case 'modified':
      return `${d.path}: sha256 is ${d.got}, ${CHECKSUMS_FILE} says ${d.expected}`;
    case 'misnamed-blob':
      return `${d.path}: its checksum line says sha256:${d.expected}, but a blob's name must be its digest`;
  }
}

/** Hashes every listed file (streaming) and refuses the bundle if anything differs. */
export async function checkBundleChecksums(
  archive: BundleArchive,
  opts: { onEvent?: EventSink; concurrency?: number; signal?: AbortSignal } = {},
): Promise<ChecksumResult> {
  const onEvent = opts.onEvent ?? noEvents;
  if (!archive.lookup(CHECKSUMS_FILE)) {
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: there is no ${CHECKSUMS_FILE}, so the bundle cannot be checked`,
      {
        hint: 'Load only bundles made by `sealift bundle`; copy the whole bundle again.',
      },
    );
  }
  const listed = parseChecksums((await archive.readSmall(CHECKSUMS_FILE)).toString('utf8'), archive.location);
  const diffs: ChecksumDifference[] = [];
  for (const e of archive.entries.values()) {
    if (e.type === 'directory' || e.path === CHECKSUMS_FILE) continue;
    if (!listed.has(e.path)) diffs.push({ path: e.path, problem: 'unlisted' });
  }
  // in archive order, one file at a time by default: one sequential read of the tar, which is
  // what a site's USB or network disk does best (one core hashes faster than such a disk reads)
  const limit = pLimit(opts.concurrency ?? 1);
  let bytes = 0;
  onEvent({ type: 'phase', name: 'checking bundle', total: listed.size });
  const offset = (p: string) => archive.lookup(p)?.offset ?? Number.MAX_SAFE_INTEGER;
  const ordered = [...listed].sort((a, b) => offset(a[0]) - offset(b[0]));
  const reader = await RangeReader.open(archive);
  try {
    await Promise.all(
      ordered.map(([path, hex]) =>
        limit(async () => {
          opts.signal?.throwIfAborted();
          const blob = BLOB_PATH_RE.exec(path);
          if (blob && blob[1] !== hex) diffs.push({ path, problem: 'misnamed-blob', expected: hex });
          const e = archive.lookup(path);
          if (!e) {
            diffs.push({ path, problem: 'missing' });
            return;
          }
          const digest = `sha256:${hex}`;
          onEvent({ type: 'blob:start', digest, size: e.size, ref: path });
          const progress = progressInSteps((n) => onEvent({ type: 'blob:progress', digest, bytes: n }));
          const got = await reader.sha256(e, progress.add);
          progress.flush();
          onEvent({ type: 'blob:done', digest, size: e.size });
          bytes += e.size;
          if (got !== hex) diffs.push({ path, problem: 'modified', expected: hex, got });
        }),
      ),
    );
  } finally {
    await reader.close();
  }
  if (diffs.length > 0) {
    diffs.sort((a, b) => a.path.localeCompare(b.path));
    const shown = diffs.slice(0, 10).map(describe);
    if (diffs.length > shown.length) shown.push(`... and ${diffs.length - shown.length} more`);
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location} does not match its ${CHECKSUMS_FILE}; nothing was loaded:\n  ${shown.join('\n  ')}`,
      {
        hint: 'The bundle was altered or damaged after it was made. Copy it again from the source and compare its .sha256 files.',
        details: { differences: diffs },
      },
    );
  }
  return { files: listed.size, bytes };
}

const HASH_CHUNK = 1024 * 1024;

/**
 * Hashes byte ranges of the tar (or its parts) with two reused buffers: the next chunk is read
 * while the current one is hashed, and no buffer is allocated per chunk (a GB bundle read through
 * fresh stream buffers spends much of its time in the garbage collector). A directory bundle is
 * read through the archive's own streams.
 */
class RangeReader {
  private readonly archive: BundleArchive;
  private readonly parts: { fh: FileHandle; start: number; size: number }[];
  /** pairs of chunk buffers, one pair per file being hashed */
  private readonly free: Buffer[][] = [];
  private constructor(archive: BundleArchive, parts: { fh: FileHandle; start: number; size: number }[]) {
    this.archive = archive;
    this.parts = parts;
  }

  static async open(archive: BundleArchive): Promise<RangeReader> {
    const parts: { fh: FileHandle; start: number; size: number }[] = [];
    let start = 0;
    try {
      for (const f of archive.kind === 'directory' ? [] : archive.files) {
        const fh = await open(f, 'r');
        parts.push({ fh, start, size: (await fh.stat()).size });
        start += parts.at(-1)?.size ?? 0;
      }
    } catch (e) {
      await Promise.all(parts.map((p) => p.fh.close()));
      throw e;
    }
    return new RangeReader(archive, parts);
  }

  /** up to `length` bytes at `at` (one part at most) into `buf`; 0 at the end of the data */
  private async readAt(buf: Buffer, at: number, length: number): Promise<number> {
    const part = this.parts.find((p) => at >= p.start && at < p.start + p.size);
    if (!part) return 0;
    const n = Math.min(length, part.start + part.size - at);
    return (await part.fh.read(buf, 0, n, at - part.start)).bytesRead;
  }

  async sha256(e: ArchiveEntry, onBytes: (n: number) => void): Promise<string> {
    const h = createHash('sha256');
    if (this.parts.length === 0) {
      for await (const chunk of this.archive.open(e.path)) {
        h.update(chunk as Buffer);
        onBytes((chunk as Buffer).length);
      }
      return h.digest('hex');
    }
    const bufs = this.free.pop() ?? [Buffer.allocUnsafe(HASH_CHUNK), Buffer.allocUnsafe(HASH_CHUNK)];
    const end = e.offset + e.size;
    let at = e.offset;
    let i = 0;
    const next = () => (at < end ? this.readAt(bufs[i] as Buffer, at, Math.min(HASH_CHUNK, end - at)) : undefined);
    let pending = next();
    try {
      while (pending) {
        const n = await pending;
        if (n === 0) break; // the file is shorter than its index says: the digest will not match
        const cur = bufs[i] as Buffer;
        at += n;
        i ^= 1;
        pending = next();
        h.update(cur.subarray(0, n));
        onBytes(n);
      }
    } finally {
      // a read still in flight (after an error) must not land in a buffer another file uses
      await pending?.catch(() => undefined);
      this.free.push(bufs);
    }
    return h.digest('hex');
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.fh.close()));
  }
}

// ---------------------------------------------------------------------------------------------
// A re-run (after a failure, a SIGKILL, or for a no-op check) need not hash a large bundle again
// when its files are provably the ones checked: same device, inode, size, mtime and ctime (ctime
// cannot be set from user space; any write changes it). Every pushed byte is still verified
// against its digest while it streams.

const CACHE_FILE = 'verified-bundles.json';

/** sealift's cache dir ($SEALIFT_CACHE_DIR, else XDG), without loading the render stage for it. */
export function verifiedCacheDir(): string {
  return process.env.SEALIFT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sealift');
}
type VerifiedCache = Record<string, { checkedAt: string; files: number; bytes: number }>;

/** Identity of the tar (or parts) on disk; undefined for a directory, which is always hashed. */
export async function bundleFingerprint(archive: BundleArchive): Promise<string | undefined> {
  if (archive.files.length === 0) return undefined;
  const parts = await Promise.all(
    archive.files.map(async (f) => {
      const st = await stat(f, { bigint: true });
      return [
        await realpath(f),
        String(st.dev),
        String(st.ino),
        String(st.size),
        String(st.mtimeNs),
        String(st.ctimeNs),
      ];
    }),
  );
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

async function readCache(dir: string): Promise<VerifiedCache> {
  try {
    return JSON.parse(await readFile(join(dir, CACHE_FILE), 'utf8')) as VerifiedCache;
  } catch {
    return {};
  }
}

/** When this exact bundle file was checked before, what that check found. */
export async function findVerified(
  archive: BundleArchive,
  cacheDir: string,
): Promise<(ChecksumResult & { checkedAt: string }) | undefined> {
  const key = await bundleFingerprint(archive);
  return key ? (await readCache(cacheDir))[key] : undefined;
}

export async function rememberVerified(
  archive: BundleArchive,
  cacheDir: string,
  result: ChecksumResult,
): Promise<void> {
  const key = await bundleFingerprint(archive);
  if (!key) return;
  const cache = await readCache(cacheDir);
  cache[key] = { checkedAt: new Date().toISOString(), ...result };
  // keep the newest 50
  const kept = Object.fromEntries(
    Object.entries(cache)
      .sort((a, b) => b[1].checkedAt.localeCompare(a[1].checkedAt))
      .slice(0, 50),
  );
  await writeFileAtomic(join(cacheDir, CACHE_FILE), `${JSON.stringify(kept, null, 2)}\n`);
}
