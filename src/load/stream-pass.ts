// The one read of a bundle at load: entries in tar order, each hashed as it passes (StreamCheck
// gives the verdict at the end), every layer blob pushed to the site registry while it streams
// by and committed only when its bytes hash to its name (sealift checks before the commit; the
// registry checks the digest the committing PUT carries), blobs already at the site skipped (the
// bytes are read past, not held), site files spooled to disk. Manifests and tags come after the
// stream (engine.ts copyAll), once the whole bundle passed its check.
//
// A stream (a pipe, a compressed bundle) is read once in order, so its blobs cannot be read at
// once; a layer that must go up is written to a spool file as it passes (hashed on the way: a
// blob that does not match its name is never pushed) and pushed from there, several at a time,
// while the read goes on, up to PIPE_SPOOL_BYTES in the spool; one larger, or with too little
// free disk, is pushed straight from the stream as before.
//
// A blob is pushed into a repository that uses it. Which one is known before the stream for a
// file (its manifests are read by offset first); a stream learns it from the manifests that have
// passed, and a blob that passes before any manifest naming it goes into HOLDING_REPOSITORY, from
// where the images' repositories mount it afterwards (a POST, no bytes).
import { createHash } from 'node:crypto';
import { close, createReadStream, createWriteStream, open, writev } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline as streamPipeline, Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import {
  BLOB_PATH_RE,
  BUNDLE_INDEX_FILE,
  hashEntry,
  parseBundleIndex,
  type BundleIndex,
  type BundleStream,
  type StreamCheck,
  type StreamedEntry,
} from '../bundle-format/index.ts';
import { freeBytes } from '../disk.ts';
import { errorMessage, isSealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { progressInSteps } from '../oci/copy.ts';
import type { RegistryClient } from '../oci/registry.ts';
import { parseManifest, type Digest } from '../oci/types.ts';
import { VerifyStream } from '../oci/verify.ts';

/** Where blobs wait whose images are not known yet when they stream by (a pipe): mounted from here after. */
export const HOLDING_REPOSITORY = 'sealift/incoming';

/** What the stream pass learns from bundle.json before any blob: the images' target repositories and which are there. */
export interface StreamPlan {
  /** root manifest digest -> the target repository of each image with that root */
  roots: Map<Digest, string[]>;
  /** target repositories whose image is already at the site with the bundle's digest */
  present: Set<string>;
}

export interface StreamPassResult {
  /** digest -> the repository the blob is in (pushed or found by this pass) */
  placed: Map<Digest, string>;
  /** `repo digest` pairs this pass committed or found */
  inRepo: Set<string>;
  /** digest -> why it could not be pushed (the images using it fail) */
  failed: Map<Digest, string>;
  stats: { blobsPushed: number; bytesPushed: number; blobsPresent: number };
}

export interface StreamPassOptions extends RunOptions {
  stream: BundleStream;
  check: StreamCheck;
  client: RegistryClient;
  /** called once bundle.json has passed (before any blob): naming, what is at the site, the pre-checks */
  onIndex: (index: BundleIndex) => Promise<StreamPlan>;
  /** digest -> repositories whose images use it, when known before the read (a file) */
  owners?: Map<Digest, Set<string>>;
  /** blob uploads at once when the entries can be read at once (a file); a stream pushes one at a time */
  concurrency?: number;
  /** paths to write out (site files, tools), and where the spool is (known once bundle.json has passed) */
  spool?: () => { wanted: (path: string) => boolean; dir: string } | undefined;
}

/** Bytes of a stream's layers that may wait in the spool for their push at once. */
export const PIPE_SPOOL_BYTES = 1024 * 1024 * 1024;

/** Hashes what passes through (a spooled file is checked against its line after the stream). */
class Sha256Pass extends Transform {
  readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null, c?: Buffer) => void): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

export async function streamPass(opts: StreamPassOptions): Promise<StreamPassResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const { check, client, signal } = opts;
  const placed = new Map<Digest, string>();
  const inRepo = new Set<string>();
  const failed = new Map<Digest, string>();
  const stats = { blobsPushed: 0, bytesPushed: 0, blobsPresent: 0 };
  let plan: StreamPlan | undefined;
  // a stream's knowledge of which repositories use a blob grows as manifests pass
  const owners = opts.owners ?? new Map<Digest, Set<string>>();
  const kept = new Map<Digest, Buffer>();
  /** every blob reachable from the images' roots through the manifests kept so far */
  const relearn = () => {
    if (!plan || opts.owners) return;
    const walk = (d: Digest, repos: string[], depth: number) => {
      const bytes = kept.get(d);
      if (!bytes || depth > 4) return;
      let raw;
      try {
        raw = parseManifest(bytes, { where: d });
      } catch {
        return; // a config, not a manifest
      }
      const children = raw.kind === 'index' ? raw.parsed.manifests : [raw.parsed.config, ...raw.parsed.layers];
      for (const c of children) {
        const set = owners.get(c.digest) ?? new Set<string>();
        for (const r of repos) set.add(r);
        owners.set(c.digest, set);
        if (raw.kind === 'index') walk(c.digest, repos, depth + 1);
      }
    };
    for (const [root, repos] of plan.roots) walk(root, repos, 0);
  };

  // small blobs are held whole: their pushes overlap the read (a few at a time, so memory stays bounded)
  const small = pLimit(8);
  const pending: Promise<void>[] = [];
  let failure: { error: unknown } | undefined;
  /** a push running beside the read; its failure ends the pass once the read is done */
  const beside = (p: Promise<void>): Promise<void> => {
    const tracked = p.catch((error: unknown) => void (failure ??= { error }));
    pending.push(tracked);
    return tracked;
  };

  /** the repository a blob goes into now; undefined when every image that uses it is at the site */
  const destination = (digest: Digest): string | undefined => {
    const users = owners.get(digest);
    if (users && users.size > 0) return [...users].find((r) => !plan?.present.has(r));
    // not known yet (a stream): needed unless every image is there already
    const all = [...(plan?.roots.values() ?? [])].flat();
    return all.length > 0 && all.every((r) => plan?.present.has(r)) ? undefined : HOLDING_REPOSITORY;
  };

  /** Where a blob goes (undefined: every image that uses it is at the site), and whether it is there already. */
  const placeOf = async (digest: Digest): Promise<{ repo: string | undefined; present: boolean }> => {
    const repo = destination(digest);
    return { repo, present: repo !== undefined && (await client.blobExists(repo, digest, signal)) };
  };

  /** A blob not pushed (not needed, or there already): read past, still hashed for the verdict. */
  const readPast = async (e: StreamedEntry, digest: Digest, body: Readable, repo: string | undefined) => {
    const { hex: got } = await hashEntry(body, false);
    check.record(e, got);
    if (!repo) return;
    placed.set(digest, repo);
    inRepo.add(`${repo} ${digest}`);
    stats.blobsPresent++;
    onEvent({ type: 'blob:done', digest, size: e.size, skipped: 'present' });
  };

  /** Pushes one blob from `body` (hashed against its checksums line on the way); records the outcome. */
  const pushBlob = async (e: StreamedEntry, hex: string, body: Readable): Promise<void> => {
    const digest = `sha256:${hex}` as Digest;
    const { repo, present } = await placeOf(digest);
    if (!repo || present) return readPast(e, digest, body, repo);
    return upload(e, digest, body, repo, { hashed: false });
  };

  /** Uploads one blob into `repo`, hashed on the way unless `hashed` (the spool checked it); records the outcome. */
  const upload = async (
    e: StreamedEntry,
    digest: Digest,
    body: Readable,
    repo: string,
    opts: { hashed: boolean },
  ): Promise<void> => {
    const hex = digest.slice('sha256:'.length);
    onEvent({ type: 'blob:start', digest, size: e.size, ref: e.path });
    const progress = progressInSteps((n) => onEvent({ type: 'blob:progress', digest, bytes: n }));
    const counted = new Transform({
      transform(chunk: Buffer, _e, cb) {
        progress.add(chunk.length);
        cb(null, chunk);
      },
    });
    // the bundle's own failure (a cut stream) ends the load; the registry's fails this blob
    let sourceError: unknown;
    body.once('error', (err) => (sourceError = err));
    // the hash sealift found, whatever error the upload then reports (its session is cancelled)
    let mismatch: string | undefined;
    const verify = opts.hashed
      ? []
      : [new VerifyStream({ digest, size: e.size }, { where: `${check.location} ${e.path}` })];
    for (const v of verify)
      v.once('error', (err) => {
        if (isSealiftError(err) && err.code === 'DIGEST_MISMATCH') mismatch = err.details?.got as string | undefined;
      });
    streamPipeline([body, ...verify, counted], () => undefined);
    try {
      await client.pushBlob(repo, { digest, size: e.size }, counted, signal);
      progress.flush();
      check.record(e, hex);
      placed.set(digest, repo);
      inRepo.add(`${repo} ${digest}`);
      stats.blobsPushed++;
      stats.bytesPushed += e.size;
      onEvent({ type: 'blob:done', digest, size: e.size });
    } catch (err) {
      progress.flush();
      if (signal?.aborted) throw err;
      if (sourceError) throw sourceError;
      const got = mismatch;
      if (got) {
        // never committed: the upload session was cancelled; the verdict names the blob
        check.record(e, got.replace(/^sha256:/, ''));
        return;
      }
      check.record(e, undefined);
      failed.set(digest, errorMessage(err));
      onEvent({ type: 'warn', message: `blob ${digest} (${e.path}) could not be pushed: ${errorMessage(err)}` });
    }
  };

  // a file's entries are independent reads by offset: its big blobs go up several at a time
  const uploads = pLimit(Math.max(1, opts.concurrency ?? 4));
  const big = opts.stream.randomAccess ? uploads : undefined;
  // a stream's: through the spool
  const blobSpool = big ? undefined : new BlobSpool(tmpdir());
  let spooled = 0;
  try {
    for await (const e of opts.stream.entries()) {
      signal?.throwIfAborted();
      const blob = BLOB_PATH_RE.exec(e.path);
      const expected = check.expected(e.path);
      if (blob && expected && plan && !check.keeps(e)) {
        if (big) void beside(big(() => pushBlob(e, expected, e.body())));
        else if (blobSpool && (await viaSpool(blobSpool, e, expected))) continue;
        else await pushBlob(e, expected, e.body());
        continue;
      }
      const spool = opts.spool?.();
      if (spool?.wanted(e.path) && expected) {
        // numbered in read order: a directory bundle's entries all have offset 0
        const file = join(spool.dir, `${spooled++}`);
        const hashing = new Sha256Pass();
        await pipeline(e.body(), hashing, createWriteStream(file));
        check.record(e, hashing.hash.digest('hex'), { file });
        continue;
      }
      const held = check.keeps(e);
      const { hex, bytes } = await hashEntry(e.body(), held);
      if (e.path === BUNDLE_INDEX_FILE && bytes) {
        check.record(e, hex, { bytes });
        plan = await opts.onIndex(parseBundleIndex(bytes, check.location));
        relearn();
        continue;
      }
      if (blob && bytes && expected && bytes[0] === 0x7b) {
        // JSON: a manifest or a config, kept for the manifests' push after the stream
        check.record(e, hex, { bytes });
        kept.set(`sha256:${blob[1]}` as Digest, bytes);
        relearn();
        continue;
      }
      if (blob && bytes && expected && plan && hex === expected) {
        // a small layer: pushed from memory while the read goes on
        const b = bytes;
        const pushed = beside(small(() => pushBlob(e, expected, Readable.from([b]))));
        if (small.pendingCount >= 8) await pushed;
        continue;
      }
      check.record(e, hex, bytes ? { bytes } : undefined);
    }
    await Promise.all(pending);
  } finally {
    await blobSpool?.remove();
  }
  if (failure) throw failure.error;
  return { placed, inRepo, failed, stats };

  /**
   * A layer of a stream into the spool and its push beside the read. False: not taken (larger
   * than the spool, too little disk); the caller pushes it from the stream.
   */
  async function viaSpool(spool: BlobSpool, e: StreamedEntry, hex: string): Promise<boolean> {
    const digest = `sha256:${hex}` as Digest;
    if (e.size > PIPE_SPOOL_BYTES) return false;
    const { repo, present } = await placeOf(digest);
    if (!repo || present) {
      await readPast(e, digest, e.body(), repo);
      return true;
    }
    if (!(await spool.reserve(e.size))) return false;
    let file: string;
    try {
      const verify = new VerifyStream({ digest, size: e.size }, { where: `${check.location} ${e.path}` });
      file = spool.fileFor(digest);
      try {
        await pipeline(e.body(), verify, gatheringWriter(file));
      } catch (err) {
        if (isSealiftError(err) && err.code === 'DIGEST_MISMATCH') {
          // never pushed: the verdict names the blob
          check.record(e, String(err.details?.got ?? '').replace(/^sha256:/, ''));
          spool.release(e.size, file);
          return true;
        }
        throw err;
      }
    } catch (err) {
      spool.release(e.size);
      throw err;
    }
    void beside(
      uploads(() =>
        upload(e, digest, createReadStream(file, { highWaterMark: 1 << 20 }), repo, { hashed: true }),
      ).finally(() => spool.release(e.size, file)),
    );
    return true;
  }
}

/** what a spool file's writer gathers before one write */
const SPOOL_WRITE_BYTES = 1 << 20;

/**
 * A new file written in writes of SPOOL_WRITE_BYTES: a stream's chunks are the pipe's 64 KiB, and
 * a write each cost about 90 us of CPU here (the hand-off to libuv's thread pool and back), against
 * 20 us per 64 KiB in writes of 1 MiB (512 MiB through fs.write on this machine).
 */
function gatheringWriter(file: string): Writable {
  let fd: number | undefined;
  let gathered: Buffer[] = [];
  let bytes = 0;
  let position = 0;
  const flush = (cb: (e?: Error | null) => void) => {
    const bufs = gathered;
    const n = bytes;
    gathered = [];
    bytes = 0;
    if (n === 0) return cb();
    writev(fd!, bufs, position, (e, written) => {
      if (e) return cb(e);
      position += written;
      // a short write: the rest again
      if (written < n) {
        gathered = [Buffer.concat(bufs).subarray(written)];
        bytes = n - written;
        return flush(cb);
      }
      cb();
    });
  };
  return new Writable({
    construct(cb) {
      open(file, 'w', (e, opened) => {
        fd = opened;
        cb(e);
      });
    },
    write(chunk: Buffer, _enc, cb) {
      gathered.push(chunk);
      bytes += chunk.length;
      if (bytes >= SPOOL_WRITE_BYTES) flush(cb);
      else cb();
    },
    final(cb) {
      flush(cb);
    },
    destroy(err, cb) {
      if (fd === undefined) return cb(err);
      close(fd, (e) => cb(err ?? e));
    },
  });
}

/** Spool files of a stream's layers waiting for their push, at most PIPE_SPOOL_BYTES at once. */
class BlobSpool {
  private dir: string | undefined;
  private readonly parent: string;
  private used = 0;
  private waiters: (() => void)[] = [];

  constructor(parent: string) {
    this.parent = parent;
  }

  /** Waits until `size` bytes fit; false when the disk has too little room for them. */
  async reserve(size: number): Promise<boolean> {
    this.dir ??= await mkdtemp(join(this.parent, 'sealift-load-'));
    // room for the blob and as much again for everything else on that disk
    if ((await freeBytes(this.dir).catch(() => 0)) < 2 * size) return false;
    while (this.used > 0 && this.used + size > PIPE_SPOOL_BYTES)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.used += size;
    return true;
  }

  fileFor(digest: string): string {
    return join(this.dir!, digest.replace(':', '-'));
  }

  release(size: number, file?: string): void {
    this.used -= size;
    if (file) void rm(file, { force: true });
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  async remove(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** The spool for site files and tools, inside the directory they go to (a work name load skips). */
export async function openSpool(dir: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const spool = join(dir, '.sealift-load.tmp');
  await rm(spool, { recursive: true, force: true });
  await mkdir(spool, { recursive: true });
  return { dir: spool, remove: () => rm(spool, { recursive: true, force: true }) };
}
