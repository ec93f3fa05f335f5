// The OCI spec's nouns as plain data: Digest, Descriptor, Platform, Manifest, ImageIndex.
// Raw bytes always travel next to the parsed value: digests come from the bytes a registry
// served, never from a re-serialized object.
import { createHash } from 'node:crypto';
import { SealiftError } from '../errors.ts';
import { isDigest, parseDigest, type Digest } from './reference.ts';

export { isDigest, parseDigest, type Digest };

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type MediaType = (typeof MediaTypes)[keyof typeof MediaTypes] | (string & {});

/** Every manifest media type sealift reads, in the order sent as Accept. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
];

export const INDEX_MEDIA_TYPES: readonly string[] = [MediaTypes.ociIndex, MediaTypes.dockerManifestList];

/** Manifests are held in memory (blobs never are): this caps what a registry can make us hold. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: MediaType;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: MediaType;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: MediaType;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest or index as served: the exact bytes, their digest, and the parsed value. */
export type RawManifest =
  | { kind: 'manifest'; bytes: Uint8Array; mediaType: MediaType; digest: Digest; parsed: Manifest }
  | { kind: 'index'; bytes: Uint8Array; mediaType: MediaType; digest: Digest; parsed: ImageIndex };

export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function isIndexMediaType(mt: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mt);
}

export function isManifestMediaType(mt: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mt);
}

export function descriptorOf(raw: { bytes: Uint8Array; mediaType: MediaType; digest: Digest }): Descriptor {
  return { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.byteLength };
}

function checkDescriptor(d: unknown, where: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (
    !o ||
    typeof o !== 'object' ||
    typeof o.mediaType !== 'string' ||
    typeof o.size !== 'number' ||
    typeof o.digest !== 'string'
  ) {
    throw new SealiftError('REGISTRY_ERROR', `${where}: a descriptor lacks mediaType, digest or size`);
  }
  if (!Number.isSafeInteger(o.size) || o.size < 0)
    throw new SealiftError('REGISTRY_ERROR', `${where}: descriptor ${o.digest} has invalid size ${o.size}`);
  parseDigest(o.digest, where);
  return o as Descriptor;
}

/**
 * Parses manifest bytes. The media type comes from the registry's Content-Type (or the
 * descriptor that pointed here); when that is vague the document's own mediaType field decides.
 * `expected` (a digest the caller asked for) is checked against the bytes.
 */
export function parseManifest(
  bytes: Uint8Array,
  opts: { mediaType?: string; expected?: Digest; where: string },
): RawManifest {
  const digest = sha256Digest(bytes);
  if (opts.expected && opts.expected !== digest) {
    throw new SealiftError(
      'DIGEST_MISMATCH',
      `${opts.where}: manifest digest mismatch: expected ${opts.expected}, got ${digest}`,
      {
        details: { expected: opts.expected, got: digest },
      },
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new SealiftError('REGISTRY_ERROR', `${opts.where}: manifest is not JSON: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== 'object')
    throw new SealiftError('REGISTRY_ERROR', `${opts.where}: manifest is not a JSON object`);
  let mediaType = opts.mediaType?.split(';')[0]?.trim() ?? '';
  if (!isManifestMediaType(mediaType)) {
    if (typeof doc.mediaType === 'string' && isManifestMediaType(doc.mediaType)) mediaType = doc.mediaType;
    else if (Array.isArray(doc.manifests)) mediaType = MediaTypes.ociIndex;
    else if (doc.config) mediaType = MediaTypes.ociManifest;
  }
  if (doc.schemaVersion !== 2) {
    throw new SealiftError(
      'REGISTRY_ERROR',
      `${opts.where}: unsupported manifest schemaVersion ${String(doc.schemaVersion)} (only schema 2 and OCI are supported)`,
    );
  }
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests))
      throw new SealiftError('REGISTRY_ERROR', `${opts.where}: index has no manifests list`);
    doc.manifests.forEach((m) => checkDescriptor(m, opts.where));
    return { kind: 'index', bytes, mediaType, digest, parsed: doc as unknown as ImageIndex };
  }
  if (mediaType === MediaTypes.ociManifest || mediaType === MediaTypes.dockerManifest) {
    checkDescriptor(doc.config, opts.where);
    if (!Array.isArray(doc.layers))
      throw new SealiftError('REGISTRY_ERROR', `${opts.where}: manifest has no layers list`);
    doc.layers.forEach((l) => checkDescriptor(l, opts.where));
    return { kind: 'manifest', bytes, mediaType, digest, parsed: doc as unknown as Manifest };
  }
  throw new SealiftError(
    'REGISTRY_ERROR',
    `${opts.where}: unsupported manifest media type "${mediaType || 'unknown'}"`,
  );
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7` */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/i.test(p))) {
    throw new SealiftError('USAGE', `invalid platform "${s}"`, {
      hint: 'Write a platform as os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8.',
    });
  }
  const [os = '', architecture = '', variant] = parts;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Does `candidate` (from an index) satisfy the wanted platform? A missing variant matches any (arm64 ~ arm64/v8). */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (!wanted.variant) return true;
  const norm = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  return norm(wanted) === norm(candidate);
}

export type PlatformSelection = { kind: 'all' } | { kind: 'only'; platforms: Platform[] };
