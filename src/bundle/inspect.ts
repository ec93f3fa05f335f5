// `sealift bundle inspect` and `sealift bundle diff`: what a bundle holds, read through the one
// reader (src/bundle-format) from bundle.json, the archive's entry list and the layout's manifests
// only. Nothing is hashed: `bundle verify` is the integrity check, and inspect stays fast on a
// bundle of any size.
import { stat } from 'node:fs/promises';
import { SealiftError, isSealiftError } from '../errors.ts';
import {
  absentIndex,
  BUNDLE_INDEX_FILE,
  BundleSource,
  carriedGraph,
  isSitePath,
  readChecksums,
  isBundleSigned,
  openBundleArchive,
  parseBundleIndex,
  type BundleArchive,
  type BundleIndex,
} from '../bundle-format/index.ts';
import { formatImageReference, normalizeImageReference, withDefaultTag, type Digest } from '../oci/reference.ts';
import { MAX_MANIFEST_BYTES, formatPlatform, type Platform } from '../oci/types.ts';
import { diffBundles, type BundleDiff, type DiffInput } from './diff.ts';

/** Carried site tools live under bin/<os>-<arch>/. */
const TOOLS_PREFIX = 'bin/';
const CHARTS_PREFIX = 'charts/';

export interface InspectBase {
  identity: string;
  from: 'receipt' | 'bundle';
  name: string;
  createdAt: string;
  environment: string | null;
  registry: string | null;
  /** the base's own base, when the base is incremental too */
  parent: string | null;
  /** manifests and blobs referenced and not carried, and their bytes */
  absent: number;
  absentBytes: number;
  siteTools: string[];
}

export interface InspectImage {
  reference: string;
  digest: string;
  mediaType: string;
  platforms: string[];
  /** layers and configs of this image, and their bytes */
  blobs: number;
  bytes: number;
  /** false: an incremental bundle's unchanged image (its root manifest is the base's) */
  carried: boolean;
}

export interface BundleInspection {
  bundle: string;
  kind: BundleArchive['kind'];
  createdAt: string;
  tool: string;
  environment: string | null;
  registry: string | null;
  /** the base of an incremental bundle (what it relies on the site having); null: a full bundle */
  base: InspectBase | null;
  signature: 'unsigned' | 'signed (not verified here: bundle verify --verify-key PUB checks it)';
  images: InspectImage[];
  charts: { release: string; chart: string; version: string; path: string; sha256: string; size: number }[];
  /** the site dir but charts: helmfile, values, release files (with their release and URL), lists */
  files: { path: string; release?: string; url?: string; sha256: string; size: number }[];
  /** files under bin/ (carried helm, helmfile, ...) */
  tools: { path: string; sha256: string; size: number }[];
  /** archiveBytes: the tar (or parts, or directory's files) on disk */
  totals: BundleIndex['totals'] & { archiveBytes: number };
}

/**
 * bundle.json lists platforms only where one was chosen out of an index; an image pulled as a
 * single manifest has its platform in its config: two small reads, never a layer.
 */
async function platformsOf(archive: BundleArchive, image: BundleIndex['images'][number]): Promise<string[]> {
  if (image.platforms.length > 0) return image.platforms;
  const source = new BundleSource(archive);
  if (!source.has(image.digest as Digest)) return []; // the base's: not in this bundle to read
  // bundle.json's schema holds only sha256:<64 hex> digests
  const manifest = await source.fetchManifest({
    digest: image.digest as Digest,
    size: image.size,
    mediaType: image.mediaType,
  });
  if (manifest.kind !== 'manifest') return [];
  const config = manifest.parsed.config;
  const bytes = await archive.readSmall(source.blobPath(config.digest), MAX_MANIFEST_BYTES);
  let p: Partial<Platform>;
  try {
    p = JSON.parse(bytes.toString()) as Partial<Platform>;
  } catch (e) {
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: the config ${config.digest} of ${image.reference} is not JSON: ${(e as Error).message}`,
      { hint: 'The bundle was altered or damaged; `sealift bundle verify` names what differs.' },
    );
  }
  return p.os && p.architecture ? [formatPlatform(p as Platform)] : [];
}

function baseOf(index: BundleIndex): InspectBase | null {
  const b = index.base;
  if (!b) return null;
  return {
    identity: b.identity,
    from: b.from,
    name: b.name,
    createdAt: b.createdAt,
    environment: b.environment,
    registry: b.registry,
    parent: b.parent ?? null,
    absent: b.absent.length,
    absentBytes: b.absent.reduce((n, a) => n + a.size, 0),
    siteTools: b.siteTools.map((t) => t.path),
  };
}

async function describe(archive: BundleArchive, index: BundleIndex): Promise<BundleInspection> {
  const carriedHere = new BundleSource(archive);
  // sha256 as the bundle lists it (checksums.sha256, small): what a diff compares, not re-hashed
  const sums = await readChecksums(archive);
  const listed = (path: string, size: number) => ({ path, sha256: sums.get(path) ?? '', size });
  const fileEntries = [...archive.entries.values()].filter((e) => e.type === 'file');
  const tools = fileEntries.filter((e) => e.path.startsWith(TOOLS_PREFIX)).map((e) => listed(e.path, e.size));
  const releaseFiles = new Map(index.files.map((f) => [f.path, f]));
  const files = fileEntries
    .filter((e) => isSitePath(e.path) && !e.path.startsWith(CHARTS_PREFIX))
    .map((e) => {
      const f = releaseFiles.get(e.path);
      return {
        ...listed(e.path, e.size),
        ...(f?.release ? { release: f.release } : {}),
        ...(f?.url ? { url: f.url } : {}),
      };
    });
  let archiveBytes = 0;
  if (archive.files.length === 0) for (const e of fileEntries) archiveBytes += e.size;
  else for (const f of archive.files) archiveBytes += (await stat(f)).size;
  return {
    bundle: archive.location,
    kind: archive.kind,
    createdAt: index.createdAt,
    tool: `${index.tool.name} ${index.tool.version}`,
    environment: index.environment,
    registry: index.registry ? index.registry.host : null,
    base: baseOf(index),
    signature: isBundleSigned(archive)
      ? 'signed (not verified here: bundle verify --verify-key PUB checks it)'
      : 'unsigned',
    images: await Promise.all(
      index.images.map(async (i) => ({
        reference: i.reference,
        digest: i.digest,
        mediaType: i.mediaType,
        platforms: await platformsOf(archive, i),
        blobs: i.blobs,
        bytes: i.bytes,
        carried: carriedHere.has(i.digest as Digest),
      })),
    ),
    charts: index.charts.map((c) => ({
      release: c.release,
      chart: c.chart,
      version: c.version,
      path: c.path,
      sha256: c.sha256,
      size: c.size,
    })),
    files,
    tools,
    totals: { ...index.totals, archiveBytes },
  };
}

async function readIndex(archive: BundleArchive): Promise<BundleIndex> {
  return parseBundleIndex(await archive.readSmall(BUNDLE_INDEX_FILE), archive.location);
}

/** What a bundle holds, from bundle.json, checksums.sha256 and the archive's entries: fast, and no integrity check. */
export async function inspectBundle(input: string): Promise<BundleInspection> {
  const archive = await openBundleArchive(input);
  try {
    return await describe(archive, await readIndex(archive));
  } finally {
    await archive.close();
  }
}

/**
 * Each image's bytes (the blobs of the platforms it carried) as a bundle's bundle.json records
 * them, by normalized reference (as a lock names it): what `images --sizes-from` writes into the
 * lock. Reads bundle.json only, never a layer.
 */
export async function bundleImageSizes(input: string): Promise<Map<string, number>> {
  const archive = await openBundleArchive(input);
  try {
    const index = await readIndex(archive);
    return new Map(
      index.images.map((i) => [
        formatImageReference(withDefaultTag(normalizeImageReference(i.reference, `${archive.location}: bundle.json`))),
        i.bytes,
      ]),
    );
  } finally {
    await archive.close();
  }
}

/** Every blob digest the layout's images reference and the bundle carries (manifests included), with its size. */
async function layoutBlobs(archive: BundleArchive, index: BundleIndex): Promise<Map<string, number>> {
  const source = new BundleSource(archive);
  const absent = absentIndex(index);
  const blobs = new Map<string, number>();
  for (const image of await source.listImages()) {
    const graph = await carriedGraph(source, image.descriptor, image.source, absent);
    for (const d of [...graph.manifests, ...graph.blobs]) blobs.set(d.digest, d.size);
  }
  return blobs;
}

async function readForDiff(
  which: 'A' | 'B',
  input: string,
): Promise<{ inspection: BundleInspection; diff: DiffInput }> {
  try {
    const archive = await openBundleArchive(input);
    try {
      const index = await readIndex(archive);
      const inspection = await describe(archive, index);
      return {
        inspection,
        diff: {
          images: inspection.images,
          blobs: await layoutBlobs(archive, index),
          charts: inspection.charts,
          files: inspection.files,
          tools: inspection.tools,
        },
      };
    } finally {
      await archive.close();
    }
  } catch (e) {
    // name which of the two arguments is at fault
    if (!isSealiftError(e)) throw e;
    throw new SealiftError(e.code, `bundle ${which} (${input}): ${e.message}`, {
      ...(e.hint ? { hint: e.hint } : {}),
      details: { ...e.details, argument: which, bundle: input },
      cause: e,
    });
  }
}

export interface BundleDiffResult extends BundleDiff {
  a: string;
  b: string;
  /** each side's base (incremental bundles); null: a full bundle */
  baseA: InspectBase | null;
  baseB: InspectBase | null;
}

/** What B holds that A does not (and the other way round for images, charts and files). */
export async function diffBundleFiles(a: string, b: string): Promise<BundleDiffResult> {
  const left = await readForDiff('A', a);
  const right = await readForDiff('B', b);
  return {
    a,
    b,
    baseA: left.inspection.base,
    baseB: right.inspection.base,
    ...diffBundles(left.diff, right.diff),
  };
}
