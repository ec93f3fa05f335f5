// The bundle's OCI image layout (`images/` inside the tar) as a copy source: manifests and
// blobs are read straight out of the archive by offset and verified against their descriptor
// while streaming. Sizes that disagree with a descriptor are refused before a byte is sent.
// When the archive was checked against checksums.sha256 (whose line for a blob must be its
// name), blobs are not hashed a second time on the way out: their length is still checked, and
// the registry checks the digest when it commits the upload.
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { SealiftError } from '../errors.ts';
import { errorMessage } from '../errors.ts';
import { isDigest, normalizeImageReference, type Digest } from '../oci/reference.ts';
import type { ImageSource } from '../oci/copy.ts';
import { ANNOTATION_SOURCE } from '../oci/layout.ts';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type RawManifest } from '../oci/types.ts';
import { ShortBodyError, VerifyStream } from '../oci/verify.ts';
import type { BundleArchive } from './archive.ts';
import { blobPath, LAYOUT_INDEX_FILE } from './names.ts';

/** One image as the layout's index.json lists it. */
export interface LayoutImage {
  /** full source reference (io.sealift.source), e.g. docker.io/istio/pilot:1.23.2 */
  source: string;
  /** the source reference's tag, if any (ref.name holds the full reference: many images share a tag) */
  tag?: string;
  descriptor: Descriptor;
}

/** Passes exactly `size` bytes, counting them; fails on fewer or more. */
class LengthCheck extends Transform {
  private received = 0;
  private readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  private readonly where: string;
  private readonly onBytes: ((n: number) => void) | undefined;
  constructor(desc: Pick<Descriptor, 'digest' | 'size'>, where: string, onBytes?: (n: number) => void) {
    super();
    this.desc = desc;
    this.where = where;
    this.onBytes = onBytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.desc.size) {
      cb(
        new SealiftError('BUNDLE_INVALID', `${this.where}: longer than its size ${this.desc.size}`, {
          details: { digest: this.desc.digest, expectedSize: this.desc.size },
        }),
      );
      return;
    }
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.received < this.desc.size) cb(new ShortBodyError(this.where, this.desc, this.received));
    else cb();
  }
}

export interface BundleSourceOptions {
  /**
   * Every file of the archive matched checksums.sha256 (in this run, or an unchanged file in an
   * earlier one): blob bytes are length-checked on the way out, not hashed again.
   */
  checked?: boolean;
}

export class BundleSource implements ImageSource {
  readonly archive: BundleArchive;
  readonly checked: boolean;
  constructor(archive: BundleArchive, opts: BundleSourceOptions = {}) {
    this.archive = archive;
    this.checked = opts.checked ?? false;
  }

  get location(): string {
    return this.archive.location;
  }

  get name(): string {
    return this.archive.location;
  }

  blobPath(digest: string): string {
    if (!isDigest(digest))
      throw new SealiftError('BUNDLE_INVALID', `${this.location}: "${digest}" is not a sha256 digest`);
    return blobPath(digest);
  }

  /** The images index.json names, with their source references. */
  async listImages(): Promise<LayoutImage[]> {
    const path = LAYOUT_INDEX_FILE;
    if (!this.archive.lookup(path)) {
      throw new SealiftError('BUNDLE_INVALID', `${this.location}: ${path} is missing; this is not a sealift bundle`, {
        hint: 'Give the .tar that `sealift bundle` wrote.',
      });
    }
    let index: { manifests?: Descriptor[] };
    try {
      index = JSON.parse((await this.archive.readSmall(path, MAX_MANIFEST_BYTES)).toString('utf8')) as {
        manifests?: Descriptor[];
      };
    } catch (e) {
      throw new SealiftError('BUNDLE_INVALID', `${this.location}: ${path} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(index.manifests))
      throw new SealiftError('BUNDLE_INVALID', `${this.location}: ${path} has no manifests list`);
    const out: LayoutImage[] = [];
    for (const [i, d] of index.manifests.entries()) {
      const source = d.annotations?.[ANNOTATION_SOURCE];
      // every entry sealift writes names its source: one without is not part of the format
      if (!source)
        throw new SealiftError(
          'BUNDLE_INVALID',
          `${this.location}: ${path} entry ${i + 1} has no ${ANNOTATION_SOURCE} annotation`,
        );
      if (!isDigest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0)
        throw new SealiftError('BUNDLE_INVALID', `${this.location}: ${path} has an invalid descriptor for ${source}`);
      let tag: string | undefined;
      try {
        tag = normalizeImageReference(source).tag;
      } catch (e) {
        // the bundle's own data, not the user's: no excludeImages hint applies
        throw new SealiftError(
          'BUNDLE_INVALID',
          `${this.location}: ${path} entry ${i + 1} names the source "${source}", which is not an image reference (${errorMessage(e)})`,
          {
            hint: 'The bundle was altered after it was made; copy the original again, or make it again with `sealift bundle`.',
          },
        );
      }
      out.push({ source, ...(tag ? { tag } : {}), descriptor: d });
    }
    return out;
  }

  has(digest: Digest): boolean {
    return this.archive.lookup(this.blobPath(digest)) !== undefined;
  }

  private checkSize(desc: Pick<Descriptor, 'digest' | 'size'>): void {
    const path = this.blobPath(desc.digest);
    const e = this.archive.lookup(path);
    if (!e) {
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${this.location}: blob ${desc.digest} is referenced but not in the bundle (${path})`,
        {
          hint: 'The bundle is incomplete; make it again with `sealift bundle`.',
        },
      );
    }
    if (e.size !== desc.size) {
      throw new SealiftError(
        'BUNDLE_INVALID',
        `${this.location}: ${path} is ${e.size} bytes but its descriptor says ${desc.size}`,
        {
          hint: 'The bundle was altered or damaged; copy it again.',
          details: { digest: desc.digest, expectedSize: desc.size, size: e.size },
        },
      );
    }
  }

  /** A manifest or index, byte for byte, verified against its digest; by descriptor or digest. */
  async fetchManifest(selector: string | Pick<Descriptor, 'digest' | 'size' | 'mediaType'>): Promise<RawManifest> {
    let desc: Pick<Descriptor, 'digest' | 'size'> & { mediaType?: string };
    if (typeof selector === 'string') {
      if (!isDigest(selector))
        throw new SealiftError('INTERNAL', `the bundle reader looks manifests up by digest, not "${selector}"`);
      const e = this.archive.lookup(this.blobPath(selector));
      if (!e) throw new SealiftError('BUNDLE_INVALID', `${this.location}: manifest ${selector} is not in the bundle`);
      desc = { digest: selector, size: e.size };
    } else desc = selector;
    this.checkSize(desc);
    const bytes = await this.archive.readSmall(this.blobPath(desc.digest), MAX_MANIFEST_BYTES);
    return parseManifest(bytes, {
      ...(desc.mediaType ? { mediaType: desc.mediaType } : {}),
      expected: desc.digest,
      where: `${this.location} ${desc.digest}`,
    });
  }

  /** A blob's bytes, which fail the stream unless they are exactly the descriptor's. */
  async fetchBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: { onBytes?: (n: number) => void } = {},
  ): Promise<Readable> {
    this.checkSize(desc);
    const raw = this.archive.open(this.blobPath(desc.digest));
    const where = `${this.location} ${desc.digest}`;
    const verify = this.checked
      ? new LengthCheck(desc, where, opts.onBytes)
      : new VerifyStream(desc, { where, ...(opts.onBytes ? { onBytes: opts.onBytes } : {}) });
    pipeline(raw, verify, () => undefined);
    return verify;
  }

  /** Every manifest and blob digest an image's graph holds (manifests are small and read from the bundle). */
  async graph(root: Descriptor): Promise<{ manifests: Descriptor[]; blobs: Descriptor[] }> {
    const manifests: Descriptor[] = [];
    const blobs: Descriptor[] = [];
    const walk = async (d: Descriptor): Promise<void> => {
      const raw = await this.fetchManifest(d);
      manifests.push(d);
      if (raw.kind === 'index') for (const c of raw.parsed.manifests) await walk(c);
      else blobs.push(raw.parsed.config, ...raw.parsed.layers);
    };
    await walk(root);
    return { manifests, blobs };
  }
}
