// Bundles made by hand, without a registry, in exactly the format `sealift bundle` writes
// (src/bundle-format): for the bad-bundle cases, which start from a good bundle and damage one
// thing. The writer's own functions write bundle.json and checksums.sha256, so a case that keeps
// the checksums consistent (`resum`) damages only what it means to.
//
//   const b = await craftBundle(join(tmp, 'b'));        // a directory bundle with two images
//   await rm(join(b.root, blobPath(b.images[1].layers[0].digest)));
//   await resum(b.root);                                // checksums consistent again
//   await packBundle({ root: b.root, output: join(tmp, 'b.tar') });
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  BUNDLE_FORMAT_VERSION,
  BUNDLE_INDEX_FILE,
  blobPath,
  serializeBundleIndex,
  type BundleIndex,
} from '../../src/bundle-format/index.ts';
import { writeChecksums } from '../../src/bundle/pack.ts';
import { ANNOTATION_REF_NAME, ANNOTATION_SOURCE } from '../../src/oci/layout.ts';
import { MediaTypes, sha256Digest, type Descriptor, type Digest } from '../../src/oci/types.ts';

export interface CraftedImage {
  reference: string;
  /** the root in images/index.json (a manifest, or an index over a nested index over a manifest) */
  root: Descriptor;
  /** every manifest and index of the graph, root first */
  manifests: Descriptor[];
  config: Descriptor;
  layers: Descriptor[];
}

export interface CraftedBundle {
  root: string;
  images: CraftedImage[];
}

async function putBlob(root: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256Digest(bytes);
  const path = join(root, blobPath(digest));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return { mediaType, digest, size: bytes.length };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

async function image(root: string, reference: string, nested: boolean): Promise<CraftedImage> {
  const config = await putBlob(
    root,
    json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, ref: reference }),
    MediaTypes.ociConfig,
  );
  const layers = [await putBlob(root, randomBytes(3000), MediaTypes.ociLayerGzip)];
  const manifest = await putBlob(
    root,
    json({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers }),
    MediaTypes.ociManifest,
  );
  const manifests = [manifest];
  let top = manifest;
  if (nested) {
    const platform = { os: 'linux', architecture: 'amd64' };
    const inner = await putBlob(
      root,
      json({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [{ ...manifest, platform }] }),
      MediaTypes.ociIndex,
    );
    top = await putBlob(
      root,
      json({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [inner] }),
      MediaTypes.ociIndex,
    );
    manifests.unshift(top, inner);
  }
  return { reference, root: top, manifests, config, layers };
}

/** A bundle.json for these image roots (blobs: everything a root's graph holds, as sizes). */
export function bundleIndexOf(
  images: readonly {
    reference: string;
    root: { digest: string; mediaType: string; size: number };
    blobSizes: number[];
  }[],
): BundleIndex {
  const entries = images.map((i) => ({
    reference: i.reference,
    releases: ['test'],
    digest: i.root.digest,
    mediaType: i.root.mediaType,
    size: i.root.size,
    sourceDigest: i.root.digest,
    selection: 'exact' as const,
    platforms: ['linux/amd64'],
    blobs: i.blobSizes.length,
    bytes: i.blobSizes.reduce((n, b) => n + b, 0),
  }));
  const bytes = entries.reduce((n, e) => n + e.bytes, 0);
  return {
    version: BUNDLE_FORMAT_VERSION,
    tool: { name: 'sealift', version: 'test' },
    createdAt: new Date(0).toISOString(),
    environment: null,
    registry: null,
    platforms: ['linux/amd64'],
    charts: [],
    files: [],
    images: entries,
    totals: {
      images: entries.length,
      blobs: entries.reduce((n, e) => n + e.blobs, 0),
      blobBytes: bytes,
      imageBytes: bytes,
      savedBySharing: 0,
      charts: 0,
      files: 0,
    },
  };
}

/** Writes bundle.json (through the writer's schema) for these images. */
export async function writeIndexFor(root: string, images: readonly CraftedImage[]): Promise<void> {
  const index = bundleIndexOf(
    images.map((i) => ({
      reference: i.reference,
      root: i.root,
      blobSizes: [i.config.size, ...i.layers.map((l) => l.size)],
    })),
  );
  await writeFile(join(root, BUNDLE_INDEX_FILE), serializeBundleIndex(index));
}

/** images/index.json listing these images (source annotation as sealift writes it). */
export async function writeLayoutIndex(root: string, images: readonly CraftedImage[]): Promise<void> {
  await writeFile(
    join(root, 'images', 'index.json'),
    `${JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: MediaTypes.ociIndex,
        manifests: images.map((i) => ({
          ...i.root,
          annotations: { [ANNOTATION_SOURCE]: i.reference, [ANNOTATION_REF_NAME]: i.reference.split(':').pop() },
        })),
      },
      null,
      2,
    )}\n`,
  );
}

/** A good directory bundle: a plain image and one behind two nested indexes. */
export async function craftBundle(root: string): Promise<CraftedBundle> {
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, 'images'), { recursive: true });
  await writeFile(join(root, 'images', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}\n');
  const images = [
    await image(root, 'docker.io/library/busybox:1.36', false),
    await image(root, 'quay.io/jetstack/cert-manager-controller:v1.16.1', true),
  ];
  await writeLayoutIndex(root, images);
  await writeIndexFor(root, images);
  await mkdir(join(root, 'imagelists'), { recursive: true });
  await writeFile(join(root, 'imagelists', 'crafted.txt'), `${images.map((i) => i.reference).join('\n')}\n`);
  await resum(root);
  return { root, images };
}

/** checksums.sha256 written again over what the directory holds now (the writer's own function). */
export async function resum(root: string): Promise<void> {
  await writeChecksums(root);
}

/** Edits a JSON file of the bundle in place. */
export async function editJson(root: string, path: string, edit: (v: Record<string, unknown>) => void): Promise<void> {
  const v = JSON.parse(await readFile(join(root, path), 'utf8')) as Record<string, unknown>;
  edit(v);
  await writeFile(join(root, path), `${JSON.stringify(v, null, 2)}\n`);
}

export type { Digest };
