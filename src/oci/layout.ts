// An OCI image layout on disk (oci-layout, index.json, blobs/sha256/). Every blob is verified
// while it is written to an ingest file, fsynced, renamed to its digest, and the directory
// fsynced: a power cut cannot leave a renamed blob whose bytes never reached the disk. Only then
// is the record `.verified/<hex>` written. A blob found without its record (written by an older
// sealift, or copied in) is hashed once before it is trusted, and removed if it does not match,
// so a zeroed or damaged blob of the right size is fetched again, never packed. index.json is
// rewritten atomically and never holds the same entry twice.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { isTemporaryNetworkError } from './transport.ts';
import { SealiftError } from '../errors.ts';
import { fsyncDir, fsyncFile, writeFileAtomic } from '../fs-atomic.ts';
import { MediaTypes, parseManifest, type Descriptor, type Digest, type ImageIndex, type RawManifest } from './types.ts';
import { VerifyStream } from './verify.ts';

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_SOURCE = 'io.sealift.source';

const INGEST_DIR = '.ingest';
/** records of blobs this layout verified and made durable (empty files named by hex) */
export const VERIFIED_DIR = '.verified';

export class OciLayout {
  readonly dir: string;
  private queue: Promise<unknown> = Promise.resolve();
  /** digests known good in this process (verified on write, or hashed once when found) */
  private readonly trusted = new Set<string>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens a layout, creating it if missing, and removes ingest files a killed run left. */
  static async open(dir: string, opts: { create?: boolean } = { create: true }): Promise<OciLayout> {
    const layout = new OciLayout(dir);
    const marker = join(dir, 'oci-layout');
    const has = await stat(marker).then(
      () => true,
      () => false,
    );
    if (!has) {
      if (!opts.create)
        throw new SealiftError('BUNDLE_INVALID', `${dir} is not an OCI image layout (no oci-layout file)`);
      await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
      await writeFileAtomic(marker, `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`);
    }
    if (
      !(await stat(join(dir, 'index.json')).then(
        () => true,
        () => false,
      ))
    ) {
      if (!opts.create) throw new SealiftError('BUNDLE_INVALID', `${dir} has no index.json`);
      await layout.writeIndex({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] });
    }
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    // a killed run leaves ingest files: random-named ones are dropped, <hex>.partial ones are
    // kept so that the blob can continue where it stopped (ingestBlob)
    if (opts.create !== false) {
      const left = await readdir(join(dir, INGEST_DIR)).catch(() => [] as string[]);
      await Promise.all(
        left.filter((n) => !n.endsWith('.partial')).map((n) => rm(join(dir, INGEST_DIR, n), { force: true })),
      );
    }
    return layout;
  }

  blobPath(digest: Digest): string {
    const [alg, hex] = digest.split(':');
    return join(this.dir, 'blobs', alg ?? 'sha256', hex ?? '');
  }

  private recordPath(digest: Digest): string {
    return join(this.dir, VERIFIED_DIR, digest.split(':')[1] ?? '');
  }

  /**
   * Present, with the right size, and known good: written through a verified, durable write
   * (its record), or hashed now. A blob that does not hash to its name is removed, so the caller
   * fetches it again.
   */
  async hasBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    const path = this.blobPath(desc.digest);
    const st = await stat(path).catch(() => undefined);
    if (st === undefined || !st.isFile() || st.size !== desc.size) return false;
    if (this.trusted.has(desc.digest)) return true;
    if (
      await stat(this.recordPath(desc.digest)).then(
        () => true,
        () => false,
      )
    ) {
      this.trusted.add(desc.digest);
      return true;
    }
    const h = createHash('sha256');
    for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
    if (`sha256:${h.digest('hex')}` !== desc.digest) {
      await rm(path, { force: true });
      return false;
    }
    await this.record(desc.digest);
    return true;
  }

  private async record(digest: Digest): Promise<void> {
    await mkdir(join(this.dir, VERIFIED_DIR), { recursive: true });
    await writeFile(this.recordPath(digest), '');
    this.trusted.add(digest);
  }

  /** A verified file becomes the blob: its bytes on disk first, then the rename, then the record. */
  private async commit(tmp: string, digest: Digest): Promise<void> {
    await fsyncFile(tmp);
    const dir = join(this.dir, 'blobs', 'sha256');
    await mkdir(dir, { recursive: true });
    await rename(tmp, this.blobPath(digest));
    await fsyncDir(dir);
    await this.record(digest);
  }

  /** Removes a blob and its record. */
  async removeBlob(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
    await rm(this.recordPath(digest), { force: true });
    this.trusted.delete(digest);
  }

  /** A verified read stream of a stored blob. */
  async fetchBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: { onBytes?: (n: number) => void } = {},
  ): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    if (!(await this.hasBlob(desc)))
      throw new SealiftError('NOT_FOUND', `blob ${desc.digest} (${desc.size} bytes) is not in the layout ${this.dir}`);
    const verify = new VerifyStream(desc, { where: path, ...(opts.onBytes ? { onBytes: opts.onBytes } : {}) });
    pipeline(createReadStream(path), verify).catch(() => undefined);
    return verify;
  }

  async readBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.fetchBlob(desc)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Writes a blob from a stream: verified into an ingest file, then renamed into place.
   * Returns 'existed' without reading the stream when the blob is already there.
   */
  async writeBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    body: Readable | Uint8Array,
    opts: { onBytes?: (n: number) => void } = {},
  ): Promise<'written' | 'existed'> {
    if (await this.hasBlob(desc)) {
      if (!(body instanceof Uint8Array)) body.destroy();
      return 'existed';
    }
    await mkdir(join(this.dir, INGEST_DIR), { recursive: true });
    const tmp = join(this.dir, INGEST_DIR, `${desc.digest.replace(':', '-')}.${randomBytes(4).toString('hex')}`);
    try {
      const out = createWriteStream(tmp, { flags: 'wx' });
      if (body instanceof Uint8Array) {
        const verify = new VerifyStream(desc, {
          where: `blob ${desc.digest}`,
          ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
        });
        verify.end(body);
        await pipeline(verify, out);
      } else if (body instanceof VerifyStream && body.verifies(desc) && !opts.onBytes) {
        // already verified against this very descriptor as it streams (a registry or layout
        // source): the pipeline fails unless it passed, so a second hash would change nothing
        await pipeline(body, out);
      } else {
        await pipeline(
          body,
          new VerifyStream(desc, { where: `blob ${desc.digest}`, ...(opts.onBytes ? { onBytes: opts.onBytes } : {}) }),
          out,
        );
      }
      await this.commit(tmp, desc.digest as Digest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return 'written';
  }

  /**
   * Writes a blob that may continue a partial one: the bytes already in <hex>.partial are hashed
   * and `openFrom(offset)` supplies the rest; without a partial (or when the source cannot serve
   * a range) `open()` supplies all of it. Verified as a whole before the rename. A transfer cut
   * short keeps its partial for the next attempt; a digest mismatch removes it.
   */
  async ingestBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: () => Promise<Readable>,
    openFrom?: (offset: number) => Promise<Readable | undefined>,
    opts: { onBytes?: (n: number) => void } = {},
  ): Promise<'written' | 'existed'> {
    if (await this.hasBlob(desc)) return 'existed';
    if (!openFrom) return this.writeBlob(desc, await open(), opts);
    await mkdir(join(this.dir, INGEST_DIR), { recursive: true });
    const partial = join(this.dir, INGEST_DIR, `${desc.digest.replace(':', '-')}.partial`);
    const have = (await stat(partial).catch(() => undefined))?.size ?? 0;
    let src: Readable | undefined;
    let hash = createHash('sha256');
    if (have > 0 && have < desc.size) {
      for await (const c of createReadStream(partial)) hash.update(c as Buffer);
      src = await openFrom(have);
    }
    const resumed = src !== undefined;
    if (!src) {
      hash = createHash('sha256');
      src = await open();
    }
    // a full read from a source that already verifies this descriptor needs no second hash
    const trusted = !resumed && !opts.onBytes && src instanceof VerifyStream && src.verifies(desc);
    const stages: NodeJS.ReadWriteStream[] = trusted
      ? []
      : [
          new VerifyStream(desc, {
            where: `blob ${desc.digest}`,
            ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
            ...(resumed ? { resume: { hash, received: have } } : {}),
          }),
        ];
    try {
      await pipeline([src, ...stages, createWriteStream(partial, { flags: resumed ? 'a' : 'w' })]);
      await this.commit(partial, desc.digest as Digest);
    } catch (e) {
      if (!(e instanceof SealiftError && e.code === 'NETWORK_ERROR') && !isTemporaryNetworkError(e))
        await rm(partial, { force: true });
      throw e;
    }
    return 'written';
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, 'index.json');
    try {
      const idx = JSON.parse(await readFile(path, 'utf8')) as ImageIndex;
      if (!Array.isArray(idx.manifests)) throw new Error('no manifests list');
      return idx;
    } catch (e) {
      throw new SealiftError('BUNDLE_INVALID', `${path} is not a valid OCI index: ${(e as Error).message}`);
    }
  }

  private async writeIndex(idx: ImageIndex): Promise<void> {
    await writeFileAtomic(join(this.dir, 'index.json'), `${JSON.stringify(idx, null, 2)}\n`);
  }

  /** Serializes read-modify-write of index.json within this process. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * Adds a root entry to index.json. An entry with the same ref name and source is replaced,
   * an identical one is kept: re-runs never duplicate.
   */
  async addManifest(desc: Descriptor, annotations: Record<string, string>): Promise<void> {
    await this.locked(async () => {
      const idx = await this.readIndex();
      const entry: Descriptor = {
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        ...(desc.platform ? { platform: desc.platform } : {}),
        annotations,
      };
      const same = (m: Descriptor) =>
        (m.annotations?.[ANNOTATION_SOURCE] ?? null) === (annotations[ANNOTATION_SOURCE] ?? null) &&
        (m.annotations?.[ANNOTATION_REF_NAME] ?? null) === (annotations[ANNOTATION_REF_NAME] ?? null) &&
        (annotations[ANNOTATION_SOURCE] !== undefined ||
          annotations[ANNOTATION_REF_NAME] !== undefined ||
          m.digest === desc.digest);
      const manifests = idx.manifests.filter((m) => !same(m));
      manifests.push(entry);
      await this.writeIndex({ ...idx, manifests });
    });
  }

  /** Finds root entries by ref name (tag), source reference or digest. */
  async find(selector: string): Promise<Descriptor[]> {
    const idx = await this.readIndex();
    return idx.manifests.filter(
      (m) =>
        m.digest === selector ||
        m.annotations?.[ANNOTATION_REF_NAME] === selector ||
        m.annotations?.[ANNOTATION_SOURCE] === selector,
    );
  }

  async readManifest(desc: Pick<Descriptor, 'digest' | 'size' | 'mediaType'>): Promise<RawManifest> {
    const bytes = await this.readBlob(desc);
    return parseManifest(bytes, {
      mediaType: desc.mediaType,
      expected: desc.digest,
      where: `${this.dir} ${desc.digest}`,
    });
  }

  /** Lists stored blob digests (for verification and sizes). */
  async listBlobs(): Promise<{ digest: Digest; size: number }[]> {
    const dir = join(this.dir, 'blobs', 'sha256');
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: { digest: Digest; size: number }[] = [];
    for (const n of names.sort()) {
      const st = await stat(join(dir, n));
      if (st.isFile()) out.push({ digest: `sha256:${n}` as Digest, size: st.size });
    }
    return out;
  }

  /** Removes the ingest directory (call when done, before packing). */
  async cleanIngest(): Promise<void> {
    await rm(join(this.dir, INGEST_DIR), { recursive: true, force: true });
  }
}
