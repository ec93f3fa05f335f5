// Small real images for load and mirror tests: gzip tar layers a runtime can unpack, OCI and
// Docker media types, one multi-arch index, a base layer shared between images. Written as an
// OCI layout, packed as a bundle tar (bundle.json, checksums.sha256, site files), or pushed to a
// test registry with skopeo (an independent client) to serve as an "upstream".
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { create as tarCreate, Header } from 'tar';
import { serializeBundleIndex, type BundleIndex } from '../../src/bundle-format/index.ts';
import { bundleIndexOf } from '../support/bundles.ts';
import { requireTool } from '../../src/tools.ts';
import { runSealift, SEALIFT_BIN } from '../support/cli.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface Blob {
  digest: string;
  size: number;
  mediaType: string;
  bytes: Buffer;
}

export interface FixtureImage {
  /** full source reference, e.g. docker.io/istio/pilot:1.23.2 */
  source: string;
  tag: string;
  /** what the tag resolves to */
  root: Blob;
  blobs: Blob[];
}

function blob(bytes: Buffer, mediaType: string): Blob {
  return { digest: `sha256:${sha(bytes)}`, size: bytes.length, mediaType, bytes };
}

/** One file in a tar, as a layer (uncompressed tar). */
function layerTar(name: string, content: Buffer): Buffer {
  const h = new Header({
    path: name,
    mode: 0o644,
    size: content.length,
    type: 'File',
    mtime: new Date(0),
    uid: 0,
    gid: 0,
  });
  h.encode();
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([h.block as Buffer, content, pad, Buffer.alloc(1024)]);
}

const SHARED_BASE = layerTar('base.txt', Buffer.from('a base layer shared by every fixture image\n'));

function singleManifest(opts: { arch: string; files: { name: string; content: Buffer }[]; docker?: boolean }): {
  root: Blob;
  blobs: Blob[];
} {
  const tars = [SHARED_BASE, ...opts.files.map((f) => layerTar(f.name, f.content))];
  const layers = tars.map((t) =>
    blob(
      gzipSync(t, { level: 1 }),
      opts.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
    ),
  );
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: opts.arch,
        os: 'linux',
        config: { Cmd: ['/bin/true'] },
        rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha(t)}`) },
      }),
    ),
    opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
  );
  const mediaType = opts.docker
    ? 'application/vnd.docker.distribution.manifest.v2+json'
    : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const root = blob(Buffer.from(JSON.stringify(manifest, null, 2)), mediaType);
  return { root, blobs: [config, ...layers] };
}

/**
 * `count` images named after the stack's (`docker.io/istio/pilot:1.23.2`...), each with a shared
 * base layer and its own random layer of `layerBytes`; the first is a linux/amd64+arm64 index,
 * the second uses Docker media types.
 */
export function makeImages(names: string[], opts: { layerBytes?: number } = {}): FixtureImage[] {
  const size = opts.layerBytes ?? 4096;
  return names.map((source, i) => {
    const tag = source.slice(source.lastIndexOf(':') + 1);
    const files = [{ name: `own-${i}.bin`, content: randomBytes(size) }];
    if (i === 0) {
      const a = singleManifest({ arch: 'amd64', files });
      const b = singleManifest({ arch: 'arm64', files: [{ name: `own-${i}-arm.bin`, content: randomBytes(size) }] });
      const index = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: a.root.mediaType,
            digest: a.root.digest,
            size: a.root.size,
            platform: { os: 'linux', architecture: 'amd64' },
          },
          {
            mediaType: b.root.mediaType,
            digest: b.root.digest,
            size: b.root.size,
            platform: { os: 'linux', architecture: 'arm64' },
          },
        ],
      };
      const root = blob(Buffer.from(JSON.stringify(index)), 'application/vnd.oci.image.index.v1+json');
      return { source, tag, root, blobs: [a.root, ...a.blobs, b.root, ...b.blobs] };
    }
    const m = singleManifest({ arch: 'amd64', files, docker: i === 1 });
    return { source, tag, root: m.root, blobs: m.blobs };
  });
}

/** Writes the images as one OCI layout (blobs once, index.json annotated as sealift's). */
export async function writeLayout(dir: string, images: FixtureImage[]): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const img of images) {
    for (const b of [img.root, ...img.blobs]) await writeFile(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map((img) => ({
      mediaType: img.root.mediaType,
      digest: img.root.digest,
      size: img.root.size,
      annotations: { 'org.opencontainers.image.ref.name': img.source, 'io.sealift.source': img.source },
    })),
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index, null, 2));
}

async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
}

/**
 * A bundle tar as `sealift bundle` lays it out: images/ (OCI layout), bundle.json, the site
 * files given, checksums.sha256 over everything else. Returns the tar path.
 */
export async function writeBundle(
  stage: string,
  out: string,
  images: FixtureImage[],
  siteFiles: Record<string, string> = {},
  opts: { editIndex?: (index: BundleIndex) => void } = {},
): Promise<string> {
  await writeLayout(join(stage, 'images'), images);
  for (const [p, text] of Object.entries(siteFiles)) {
    await mkdir(dirname(join(stage, p)), { recursive: true });
    await writeFile(join(stage, p), text);
  }
  const bundleJson = bundleIndexOf(
    images.map((img) => ({ reference: img.source, root: img.root, blobSizes: img.blobs.map((b) => b.size) })),
  );
  opts.editIndex?.(bundleJson);
  // the writer's own serializer (its schema): a fixture bundle is a bundle in the real format
  await writeFile(join(stage, 'bundle.json'), serializeBundleIndex(bundleJson));
  const files = await listFiles(stage);
  const lines = await Promise.all(files.map(async (f) => `${sha(await readFile(join(stage, f)))}  ${f}`));
  await writeFile(join(stage, 'checksums.sha256'), `${lines.join('\n')}\n`);
  await tarCreate({ file: out, cwd: stage, portable: true }, ['checksums.sha256', ...files]);
  return out;
}

/** Pushes the images to a registry with skopeo (an independent client), as an upstream would hold them. */
export async function seedRegistry(
  host: string,
  workDir: string,
  images: FixtureImage[],
  rename: (source: string) => string = (s) => s.slice(s.indexOf('/') + 1),
): Promise<void> {
  const skopeo = requireTool('skopeo');
  for (const [i, img] of images.entries()) {
    const dir = join(workDir, `seed-${i}`);
    let from: string;
    if (img.root.mediaType.includes('docker')) {
      // skopeo's oci: transport lists only OCI media types; its dir: transport takes any manifest
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
      await writeFile(join(dir, 'manifest.json'), img.root.bytes);
      for (const b of img.blobs) await writeFile(join(dir, b.digest.slice(7)), b.bytes);
      from = `dir:${dir}`;
    } else {
      await writeLayout(dir, [img]);
      from = `oci:${dir}:${img.source}`;
    }
    await execa(skopeo, [
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      from,
      `docker://${host}/${rename(img.source)}`,
    ]);
  }
}

/** `skopeo inspect --raw` digest of what a registry serves for a reference. */
export async function skopeoDigest(ref: string): Promise<string> {
  const skopeo = requireTool('skopeo');
  const r = await execa(skopeo, ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'buffer' });
  return `sha256:${sha(Buffer.from(r.stdout))}`;
}

/** A hand-made tar entry (header + padded body): what an attacker, not node-tar, would write. */
export function craftEntry(spec: {
  path: string;
  type?: 'File' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  linkpath?: string;
  body?: string;
}): Buffer {
  const body = Buffer.from(spec.body ?? '');
  const type = spec.type ?? 'File';
  const h = new Header({
    path: spec.path,
    mode: 0o644,
    size: type === 'File' ? body.length : 0,
    type,
    linkpath: spec.linkpath ?? '',
    mtime: new Date(0),
    uid: 0,
    gid: 0,
  });
  h.encode();
  const data =
    type === 'File' ? Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]) : Buffer.alloc(0);
  return Buffer.concat([h.block as Buffer, data]);
}

/** The tar's bytes up to its end-of-archive zero blocks, so entries can be appended. */
export function withoutEndMarker(tar: Buffer): Buffer {
  let end = tar.length - (tar.length % 512);
  while (end >= 512 && tar.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  return tar.subarray(0, end);
}

/** A cache dir of this test process (load records checked bundles there), not the user's ~/.cache. */
const CACHE_DIR = mkdtempSync(join(tmpdir(), 'sealift-load-cache-'));
process.on('exit', () => rmSync(CACHE_DIR, { recursive: true, force: true }));
export const CLI_ENV = { ...process.env, SEALIFT_CACHE_DIR: CACHE_DIR };
export const CLI = SEALIFT_BIN;

/** Runs the CLI as a user would; never throws on a non-zero exit. */
export function sealift(args: string[], env: Record<string, string> = {}) {
  return runSealift(args, { timeout: 240_000, env: { SEALIFT_CACHE_DIR: CACHE_DIR, ...env } });
}
