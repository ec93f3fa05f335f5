// Loading means verifying (zarf's validatePackageIntegrity), and `load` and `bundle verify` verify
// with this one function, so they give one verdict on the same bytes:
//   1. checksums.sha256 (its grammar: checksums.ts) lists every file but itself, each file hashes
//      to its line, nothing is missing or unlisted, and a blob's name is its digest;
//   2. the contents are complete: bundle.json (schema.ts) reads, every image it lists is in
//      images/index.json with the same digest and back, every image's graph (nested indexes
//      included) is in the bundle with the sizes its descriptors say, every chart and file it
//      lists is there with its size and sha256; in an incremental bundle, a descriptor its
//      bundle.json names as the base's (`base.absent`, same size) may be missing.
// All differences of a step are collected and named; nothing is pushed from a bundle that fails.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import pLimit from 'p-limit';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { progressInSteps } from '../oci/copy.ts';
import { normalizeImageReference, formatImageReference } from '../oci/reference.ts';
import { MAX_MANIFEST_BYTES, type Descriptor, type Digest } from '../oci/types.ts';
import type { ArchiveEntry, BundleArchive } from './archive.ts';
import { StreamedArchive, type BundleStream } from './stream.ts';
import { parseChecksums } from './checksums.ts';
import { BundleSource, type LayoutImage } from './layout.ts';
import {
  BLOB_PATH_RE,
  blobPath,
  BUNDLE_INDEX_FILE,
  CHECKSUMS_FILE,
  LAYOUT_INDEX_FILE,
  SIGNATURE_FILE,
} from './names.ts';
import { parseBundleIndex, type BundleIndex } from './schema.ts';
import { absentIndex } from './base.ts';

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

export interface CheckOptions {
  onEvent?: EventSink;
  concurrency?: number;
  signal?: AbortSignal;
  /**
   * The files were hashed against checksums.sha256 before (load's record of an unchanged tar):
   * every other rule is still checked, the hashing is skipped.
   */
  hashed?: boolean;
  /**
   * checksums.sha256's bytes as read once before (the ones whose signature was checked): the
   * check uses them, so no second read can see another list.
   */
  checksums?: Buffer;
}

/** checksums.sha256 (or `bytes` of it read before), parsed by its grammar; refused when absent. */
export async function readChecksums(archive: BundleArchive, bytes?: Buffer): Promise<Map<string, string>> {
  if (!archive.lookup(CHECKSUMS_FILE)) {
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: there is no ${CHECKSUMS_FILE}, so the bundle cannot be checked`,
      {
        hint: 'Load only bundles made by `sealift bundle`; copy the whole bundle again.',
      },
    );
  }
  return parseChecksums((bytes ?? (await archive.readSmall(CHECKSUMS_FILE))).toString('utf8'), archive.location);
}

/**
 * What a read found (path -> its sha256 hex, or undefined when not hashed), against what
 * checksums.sha256 lists: one rule set for a bundle read by offset and one read as a stream.
 */
export function checksumDifferences(
  listed: ReadonlyMap<string, string>,
  found: ReadonlyMap<string, string | undefined>,
): ChecksumDifference[] {
  const diffs: ChecksumDifference[] = [];
  for (const path of found.keys())
    if (path !== CHECKSUMS_FILE && path !== SIGNATURE_FILE && !listed.has(path))
      diffs.push({ path, problem: 'unlisted' });
  for (const [path, hex] of listed) {
    const blob = BLOB_PATH_RE.exec(path);
    if (blob && blob[1] !== hex) diffs.push({ path, problem: 'misnamed-blob', expected: hex });
    if (!found.has(path)) diffs.push({ path, problem: 'missing' });
    else {
      const got = found.get(path);
      if (got !== undefined && got !== hex) diffs.push({ path, problem: 'modified', expected: hex, got });
    }
  }
  return diffs;
}

/** Hashes every listed file (streaming) and refuses the bundle if anything differs. */
export async function checkBundleChecksums(archive: BundleArchive, opts: CheckOptions = {}): Promise<ChecksumResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const listed = await readChecksums(archive, opts.checksums);
  const found = new Map<string, string | undefined>();
  for (const e of archive.entries.values()) if (e.type === 'file') found.set(e.path, undefined);
  const limit = pLimit(opts.concurrency ?? 1);
  let bytes = 0;
  // in archive order, one file at a time by default: one sequential read of the tar, which is
  // what a site's USB or network disk does best (one core hashes faster than such a disk reads)
  onEvent({ type: 'phase', name: 'checking bundle', total: listed.size });
  if (opts.hashed) {
    for (const path of listed.keys()) bytes += archive.lookup(path)?.size ?? 0;
  } else {
    const offset = (p: string) => archive.lookup(p)?.offset ?? Number.MAX_SAFE_INTEGER;
    const ordered = [...listed].sort((a, b) => offset(a[0]) - offset(b[0]));
    const reader = await RangeReader.open(archive);
    try {
      await Promise.all(
        ordered.map(([path]) =>
          limit(async () => {
            opts.signal?.throwIfAborted();
            const e = archive.lookup(path);
            if (!e) return;
            const digest = `sha256:${listed.get(path)}`;
            onEvent({ type: 'blob:start', digest, size: e.size, ref: path });
            const progress = progressInSteps((n) => onEvent({ type: 'blob:progress', digest, bytes: n }));
            found.set(path, await reader.sha256(e, progress.add));
            progress.flush();
            onEvent({ type: 'blob:done', digest, size: e.size });
            bytes += e.size;
          }),
        ),
      );
    } finally {
      await reader.close();
    }
  }
  const diffs = checksumDifferences(listed, found);
  if (diffs.length > 0) throw checksumsRefused(archive.location, diffs);
  return { files: listed.size, bytes };
}

export function checksumsRefused(location: string, diffs: ChecksumDifference[]): SealiftError {
  diffs.sort((a, b) => a.path.localeCompare(b.path));
  const shown = diffs.slice(0, 10).map(describe);
  if (diffs.length > shown.length) shown.push(`... and ${diffs.length - shown.length} more`);
  return new SealiftError(
    'BUNDLE_INVALID',
    `${location} does not match its ${CHECKSUMS_FILE} (nothing is loaded from such a bundle):\n  ${shown.join('\n  ')}`,
    {
      hint: 'The bundle was altered or damaged after it was made. Copy it again from the source and compare its .sha256 files.',
      details: { differences: diffs },
    },
  );
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
// 2. the contents are complete

export interface BundleCheckResult extends ChecksumResult {
  index: BundleIndex;
  checksums: ReadonlyMap<string, string>;
  /** the images of images/index.json, each with the bundle.json entry it matches */
  images: LayoutImage[];
}

/** Graph depth sealift ever writes: an index, a nested index, a manifest. Deeper is refused. */
const MAX_GRAPH_DEPTH = 4;

/**
 * bundle.json against images/index.json and the blobs: every image complete before anything is
 * pushed. Refuses, naming each incomplete image, so that a load never pushes a part of a bundle.
 */
export async function checkBundleContents(
  archive: BundleArchive,
  checksums: ReadonlyMap<string, string>,
): Promise<{ index: BundleIndex; images: LayoutImage[] }> {
  if (!archive.lookup(BUNDLE_INDEX_FILE)) {
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: ${BUNDLE_INDEX_FILE} is missing; this is not a sealift bundle`,
      {
        hint: 'Give the .tar that `sealift bundle` wrote.',
      },
    );
  }
  const index = parseBundleIndex(await archive.readSmall(BUNDLE_INDEX_FILE), archive.location);
  // an incremental bundle references what its base carried: named (with its size) in bundle.json
  const absent = absentIndex(index);
  const source = new BundleSource(archive, { checked: true });
  const layoutImages = await source.listImages();
  const problems: string[] = [];
  const key = (ref: string) => formatImageReference(normalizeImageReference(ref));
  const byRef = new Map<string, LayoutImage>();
  for (const li of layoutImages) byRef.set(key(li.source), li);
  const listed = new Set<string>();
  for (const img of index.images) {
    let k: string;
    try {
      k = key(img.reference);
    } catch (e) {
      problems.push(`${BUNDLE_INDEX_FILE}: "${img.reference}" is not an image reference (${errorMessage(e)})`);
      continue;
    }
    listed.add(k);
    const li = byRef.get(k);
    if (!li) {
      problems.push(`${img.reference}: listed in ${BUNDLE_INDEX_FILE} but not in ${LAYOUT_INDEX_FILE}`);
      continue;
    }
    const blob = archive.lookup(blobPath(img.digest as Digest));
    if (li.descriptor.digest !== img.digest)
      problems.push(
        `${img.reference}: ${BUNDLE_INDEX_FILE} says ${img.digest}, ${LAYOUT_INDEX_FILE} says ${li.descriptor.digest}`,
      );
    else if (!blob) {
      // an incremental bundle's unchanged image: its base carried it (checked at the target by load)
      if (absent.get(img.digest)?.size !== img.size)
        problems.push(`${img.reference}: ${img.digest} is not in the bundle`);
    } else if (blob.size !== img.size)
      problems.push(`${img.reference}: ${img.digest} is ${blob.size} bytes, ${BUNDLE_INDEX_FILE} says ${img.size}`);
  }
  for (const li of layoutImages)
    if (!listed.has(key(li.source)))
      problems.push(`${li.source}: in ${LAYOUT_INDEX_FILE} but not listed in ${BUNDLE_INDEX_FILE}`);
  // every graph, every descriptor's blob there with its size (manifests read and verified)
  const seen = new Set<string>();
  const walk = async (d: Descriptor, image: string, depth: number): Promise<void> => {
    const path = source.blobPath(d.digest);
    const e = archive.lookup(path);
    if (!e) {
      if (absent.get(d.digest)?.size === d.size) return; // the base's: not descended into
      return void problems.push(`${image}: ${d.digest} is referenced but not in the bundle`);
    }
    if (e.size !== d.size)
      return void problems.push(`${image}: ${d.digest} is ${e.size} bytes, its descriptor says ${d.size}`);
    if (!/manifest|index|list/.test(d.mediaType ?? '')) return;
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (depth >= MAX_GRAPH_DEPTH)
      return void problems.push(`${image}: ${d.digest} is nested more than ${MAX_GRAPH_DEPTH} levels deep`);
    try {
      const raw = await source.fetchManifest(d);
      const children = raw.kind === 'index' ? raw.parsed.manifests : [raw.parsed.config, ...raw.parsed.layers];
      for (const c of children) await walk(c, image, depth + 1);
    } catch (err) {
      problems.push(`${image}: ${errorMessage(err)}`);
    }
  };
  for (const li of layoutImages) {
    seen.clear();
    await walk(li.descriptor, li.source, 0);
  }
  // what refers to an image (signatures, attestations, SBOMs) is carried whole too
  for (const img of index.images)
    for (const r of img.referrers ?? []) {
      seen.clear();
      await walk(r.descriptor as Descriptor, `${img.reference} ${r.tag ?? `referrer ${r.descriptor.digest}`}`, 0);
    }
  for (const f of [...index.charts, ...index.files]) {
    const e = archive.lookup(f.path);
    if (!e) problems.push(`${f.path}: listed in ${BUNDLE_INDEX_FILE} but not in the bundle`);
    else if (e.size !== f.size) problems.push(`${f.path}: ${e.size} bytes, ${BUNDLE_INDEX_FILE} says ${f.size}`);
    else if (checksums.get(f.path) !== f.sha256)
      problems.push(`${f.path}: sha256 ${checksums.get(f.path) ?? 'unknown'}, ${BUNDLE_INDEX_FILE} says ${f.sha256}`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20);
    if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location} is incomplete or inconsistent (nothing is loaded from such a bundle):\n  ${shown.join('\n  ')}`,
      {
        hint: 'The bundle was made incomplete or altered after it was made; a re-run cannot fix it. Make it again with `sealift bundle` (or copy the original again).',
        details: { problems },
      },
    );
  }
  return { index, images: layoutImages };
}

/** The whole check, as load and bundle verify run it: checksums, then contents. */
export async function checkBundle(archive: BundleArchive, opts: CheckOptions = {}): Promise<BundleCheckResult> {
  const sums = await checkBundleChecksums(archive, opts);
  const checksums = await readChecksums(archive, opts.checksums);
  const { index, images } = await checkBundleContents(archive, checksums);
  return { ...sums, checksums, index, images };
}

// ---------------------------------------------------------------------------------------------
// The same check over one read in tar order (a pipe, a compressed stream)

/** Small files a streamed check keeps to read after the stream: the indexes and (JSON) manifests. */
const KEPT_FILES = new Set([CHECKSUMS_FILE, SIGNATURE_FILE, BUNDLE_INDEX_FILE, LAYOUT_INDEX_FILE, 'images/oci-layout']);

/**
 * The bundle's check as it streams past: checksums.sha256 (the tar's first entry) says what each
 * file must hash to, every entry is recorded with the hash it had, the small JSON files are kept;
 * at the end `finish` gives the verdict checkBundle gives on a file: the same differences, the
 * same contents check (over what was kept).
 */
export class StreamCheck {
  readonly archive: StreamedArchive;
  private listed: Map<string, string> | undefined;
  private readonly found = new Map<string, string | undefined>();
  private readonly early: string[] = [];
  constructor(stream: Pick<BundleStream, 'location' | 'kind' | 'files'>) {
    this.archive = new StreamedArchive(stream);
  }

  get location(): string {
    return this.archive.location;
  }

  /** checksums.sha256, once it is known */
  get checksums(): ReadonlyMap<string, string> | undefined {
    return this.listed;
  }

  /** checksums.sha256 read ahead (a file indexed before its read): entry order does not matter then */
  useChecksums(listed: Map<string, string>): void {
    this.listed = listed;
  }

  /** the sha256 hex a path must have; undefined while checksums.sha256 has not passed, or unlisted */
  expected(path: string): string | undefined {
    return this.listed?.get(path);
  }

  /**
   * Whether to hold an entry's bytes: the indexes and anything that may be a manifest (a blob up
   * to a manifest's largest size), so that the contents can be checked after the stream.
   */
  keeps(e: ArchiveEntry): boolean {
    if (KEPT_FILES.has(e.path)) return e.size <= MAX_MANIFEST_BYTES * 16;
    if (!this.listed && e.size <= MAX_MANIFEST_BYTES) return true;
    return BLOB_PATH_RE.test(e.path) && e.size <= MAX_MANIFEST_BYTES;
  }

  /**
   * An entry passed with this hash. `bytes`: what was held (JSON is kept: manifests, configs,
   * indexes), or `file`: where it was spooled. Before checksums.sha256 only small files may pass.
   */
  record(e: ArchiveEntry, hex: string | undefined, content?: { bytes: Buffer } | { file: string }): void {
    this.found.set(e.path, hex);
    let kept = content;
    if (content && 'bytes' in content && !KEPT_FILES.has(e.path) && content.bytes[0] !== 0x7b) kept = undefined;
    this.archive.add(e, kept);
    if (e.path === CHECKSUMS_FILE && content && 'bytes' in content && !this.listed) {
      this.listed = parseChecksums(content.bytes.toString('utf8'), this.location);
      return;
    }
    if (!this.listed) {
      if (!content || !('bytes' in content))
        throw new SealiftError(
          'BUNDLE_INVALID',
          `${this.location}: "${e.path}" comes before ${CHECKSUMS_FILE}; a bundle read as a stream needs the checksums first`,
          {
            hint: `Bundles made by this sealift start with ${CHECKSUMS_FILE}. Load an older bundle from the file (not a pipe or a compressed stream), or make it again with \`sealift bundle\`.`,
          },
        );
      this.early.push(e.path);
    }
  }

  /** The verdict: every difference from checksums.sha256, then the contents; refuses like checkBundle. */
  async finish(): Promise<BundleCheckResult> {
    if (!this.listed)
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${this.location}: there is no ${CHECKSUMS_FILE}, so the bundle cannot be checked`,
        {
          hint: 'Load only bundles made by `sealift bundle`; copy the whole bundle again.',
        },
      );
    const diffs = checksumDifferences(this.listed, this.found);
    if (diffs.length > 0) throw checksumsRefused(this.location, diffs);
    const { index, images } = await checkBundleContents(this.archive, this.listed);
    let bytes = 0;
    for (const p of this.listed.keys()) bytes += this.archive.lookup(p)?.size ?? 0;
    return { files: this.listed.size, bytes, checksums: this.listed, index, images };
  }
}

/** An entry's bytes hashed as they pass (and held, up to `keep` bytes); `onBytes` for progress. */
export async function hashEntry(
  body: AsyncIterable<Buffer>,
  keep: boolean,
  onBytes?: (n: number) => void,
): Promise<{ hex: string; bytes?: Buffer }> {
  const h = createHash('sha256');
  const held: Buffer[] = [];
  for await (const chunk of body) {
    h.update(chunk);
    if (keep) held.push(chunk);
    onBytes?.(chunk.length);
  }
  return { hex: h.digest('hex'), ...(keep ? { bytes: Buffer.concat(held) } : {}) };
}

/** checkBundle over one read of a stream (`bundle verify` of a compressed bundle or a pipe). */
export async function checkBundleStream(
  stream: BundleStream,
  opts: CheckOptions & {
    /** after the read, before the verdict: what the kept head files (the signature) say */
    beforeVerdict?: (archive: BundleArchive) => Promise<void>;
  } = {},
): Promise<BundleCheckResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const check = new StreamCheck(stream);
  onEvent({ type: 'phase', name: 'checking bundle' });
  for await (const e of stream.entries()) {
    opts.signal?.throwIfAborted();
    const progress = progressInSteps((n) => onEvent({ type: 'blob:progress', digest: e.path, bytes: n }));
    const { hex, bytes } = await hashEntry(e.body(), check.keeps(e), progress.add);
    progress.flush();
    check.record(e, hex, bytes ? { bytes } : undefined);
  }
  await opts.beforeVerdict?.(check.archive);
  return check.finish();
}
