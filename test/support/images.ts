// Test images, made here and seeded into a registry by skopeo (an independent client), so that
// tests compare what sealift fetched with digests that sealift did not compute.
//
//   const seeded = await seedImages(registry.host, [
//     { ref: 'docker.io/istio/pilot:1.23.2', platforms: ['linux/amd64', 'linux/arm64'], base: 'distroless' },
//     { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1', format: 'docker', layers: [3 << 20] },
//   ]);
//   seeded[0].testRef  // 127.0.0.1:PORT/istio/pilot:1.23.2
//
// Layers are real tar files (gzip unless `uncompressed`), written by streaming random bytes:
// a 200 MB layer is never held in memory. Images that name the same `base` share its layers.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import pLimit from 'p-limit';
import { requireTool } from '../../src/tools.ts';
import { normalizeImageReference } from '../../src/oci/reference.ts';

export interface ImageSpec {
  /** the reference as upstream names it, with a tag: `docker.io/istio/pilot:1.23.2` */
  ref: string;
  /** one platform (default linux/amd64) gives a plain manifest; several give an index */
  platforms?: string[];
  /** make an index even for one platform */
  index?: boolean;
  /** media types: OCI (default) or Docker schema 2 / manifest list */
  format?: 'oci' | 'docker';
  /** sizes in bytes of the image's own layers (default one of 64 KiB) */
  layers?: number[];
  /** store these layers uncompressed (OCI only): how the >=200 MB layer is made without gzip cost */
  uncompressed?: boolean;
  /** name of a shared base: images naming the same base (and platform) share its layers */
  base?: string;
  /** sizes of the base layers (default [256 KiB]); must be the same wherever the base is named */
  baseLayers?: number[];
}

export interface SeededImage {
  /** the upstream-style reference from the spec */
  ref: string;
  /** the same image in the test registry: `127.0.0.1:PORT/istio/pilot:1.23.2` */
  testRef: string;
  /** repository path (`istio/pilot`) and tag */
  repository: string;
  tag: string;
  /** what the tag resolves to (index or manifest) and its media type */
  digest: string;
  mediaType: string;
  size: number;
  /** per platform (`linux/amd64`): that platform's manifest digest */
  platforms: Record<string, string>;
  /** every blob digest (configs and layers) with its size */
  blobs: Record<string, number>;
}

interface Blob {
  digest: string;
  size: number;
  mediaType: string;
  diffId?: string;
  compressed?: boolean;
}

const MT = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
    layerRaw: 'application/vnd.oci.image.layer.v1.tar',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    layerRaw: 'application/vnd.docker.image.rootfs.diff.tar',
  },
} as const;

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A tar header for one regular file (ustar). */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, 'utf8');
  const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(1_700_000_000, 12), 136, 12);
  h.fill(' ', 148, 156);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** Streams a one-file tar of `size` random bytes. */
function randomTar(name: string, size: number): Readable {
  let left = size;
  let stage = 0;
  return new Readable({
    read() {
      if (stage === 0) {
        stage = 1;
        this.push(tarHeader(name, size));
        return;
      }
      if (left > 0) {
        const n = Math.min(left, 1 << 20);
        left -= n;
        this.push(randomBytes(n));
        return;
      }
      if (stage === 1) {
        stage = 2;
        const pad = (512 - (size % 512)) % 512;
        this.push(Buffer.alloc(pad + 1024, 0));
        return;
      }
      this.push(null);
    },
  });
}

function hashing(h: ReturnType<typeof createHash>, counter: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      h.update(chunk);
      counter.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/**
 * Blobs are written once into `blobs/`; each image then gets a directory in skopeo's `dir:`
 * format (manifest.json, <hex>.manifest.json per child, <hex> per blob, as hard links), which
 * unlike skopeo 1.9's oci: transport also carries Docker media types.
 */
class ImageWriter {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  async init(): Promise<void> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true });
  }
  async putBytes(bytes: Uint8Array, mediaType: string): Promise<Blob> {
    const digest = sha256(bytes);
    await writeFile(join(this.dir, 'blobs', digest.slice(7)), bytes);
    return { digest, size: bytes.byteLength, mediaType };
  }
  async putLayer(size: number, mediaType: string, compress: boolean): Promise<Blob> {
    const tmp = join(this.dir, `tmp-${randomBytes(6).toString('hex')}`);
    const diff = createHash('sha256');
    const blob = createHash('sha256');
    const diffN = { n: 0 };
    const blobN = { n: 0 };
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [
      randomTar(`data/${randomBytes(6).toString('hex')}`, size),
      hashing(diff, diffN),
    ];
    if (compress) stages.push(createGzip({ level: 1 }));
    stages.push(hashing(blob, blobN), createWriteStream(tmp));
    await pipeline(stages as unknown as [Readable, PassThrough]);
    const digest = `sha256:${blob.digest('hex')}`;
    await rename(tmp, join(this.dir, 'blobs', digest.slice(7)));
    return { digest, size: blobN.n, mediaType, diffId: `sha256:${diff.digest('hex')}`, compressed: compress };
  }
  /** skopeo dir: layout of one image */
  async imageDir(name: string, root: Blob, children: Blob[], blobs: string[]): Promise<string> {
    const d = join(this.dir, name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'version'), 'Directory Transport Version: 1.1\n');
    await link(join(this.dir, 'blobs', root.digest.slice(7)), join(d, 'manifest.json'));
    for (const c of children)
      await link(join(this.dir, 'blobs', c.digest.slice(7)), join(d, `${c.digest.slice(7)}.manifest.json`));
    for (const b of new Set(blobs)) await link(join(this.dir, 'blobs', b.slice(7)), join(d, b.slice(7)));
    return d;
  }
}

/** Writes the specs under `dir` (one skopeo dir: per image, in `.dir`) and returns what each is. */
export async function writeImages(
  dir: string,
  specs: ImageSpec[],
): Promise<(Omit<SeededImage, 'testRef'> & { dir: string })[]> {
  const w = new ImageWriter(dir);
  await w.init();
  const bases = new Map<string, Blob[]>();
  const out: (Omit<SeededImage, 'testRef'> & { dir: string })[] = [];
  for (const [i, spec] of specs.entries()) {
    const fmt = MT[spec.format ?? 'oci'];
    const platforms = spec.platforms ?? ['linux/amd64'];
    const blobs: Record<string, number> = {};
    const perPlatform: Record<string, string> = {};
    const children: (Blob & { platform: { os: string; architecture: string; variant?: string } })[] = [];
    for (const platform of platforms) {
      const [os = 'linux', architecture = 'amd64', variant] = platform.split('/');
      const layers: Blob[] = [];
      if (spec.base) {
        const key = `${spec.base}|${platform}`;
        let base = bases.get(key);
        if (!base) {
          base = [];
          for (const size of spec.baseLayers ?? [256 << 10]) base.push(await w.putLayer(size, fmt.layer, true));
          bases.set(key, base);
        }
        layers.push(...base);
      }
      for (const size of spec.layers ?? [64 << 10]) {
        layers.push(await w.putLayer(size, spec.uncompressed ? fmt.layerRaw : fmt.layer, !spec.uncompressed));
      }
      const config = {
        architecture,
        os,
        ...(variant ? { variant } : {}),
        created: '2026-11-25T00:00:00Z',
        config: { Labels: { 'io.sealift.test': `${spec.ref} ${platform} ${randomBytes(4).toString('hex')}` } },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      };
      const cfg = await w.putBytes(Buffer.from(JSON.stringify(config)), fmt.config);
      const manifest = {
        schemaVersion: 2,
        mediaType: fmt.manifest,
        config: { mediaType: cfg.mediaType, digest: cfg.digest, size: cfg.size },
        layers: layers.map((l) => ({
          mediaType: l.compressed ? fmt.layer : fmt.layerRaw,
          digest: l.digest,
          size: l.size,
        })),
      };
      const m = await w.putBytes(Buffer.from(JSON.stringify(manifest, null, 3)), fmt.manifest);
      for (const b of [cfg, ...layers]) blobs[b.digest] = b.size;
      perPlatform[platform] = m.digest;
      children.push({ ...m, platform: { os, architecture, ...(variant ? { variant } : {}) } });
    }
    let root: Blob;
    if (platforms.length > 1 || spec.index) {
      const index = {
        schemaVersion: 2,
        mediaType: fmt.index,
        manifests: children.map((c) => ({
          mediaType: c.mediaType,
          digest: c.digest,
          size: c.size,
          platform: c.platform,
        })),
      };
      root = await w.putBytes(Buffer.from(JSON.stringify(index, null, 3)), fmt.index);
    } else {
      root = children[0] as Blob;
    }
    const isIndex = root.digest !== children[0]?.digest;
    const imgDir = await w.imageDir(`img-${i}`, root, isIndex ? children : [], Object.keys(blobs));
    const ref = normalizeImageReference(spec.ref);
    out.push({
      dir: imgDir,
      ref: spec.ref,
      repository: ref.repository,
      tag: ref.tag ?? 'latest',
      digest: root.digest,
      mediaType: root.mediaType,
      size: root.size,
      platforms: perPlatform,
      blobs,
    });
  }
  return out;
}

/**
 * Generates the images and pushes each with `skopeo copy --all --preserve-digests` to
 * `registryHost` under its upstream repository path and tag.
 */
export async function seedImages(
  registryHost: string,
  specs: ImageSpec[],
  opts: { workDir: string; creds?: { username: string; password: string }; concurrency?: number },
): Promise<SeededImage[]> {
  const skopeo = requireTool('skopeo');
  const dir = join(opts.workDir, `seed-layout-${randomBytes(4).toString('hex')}`);
  const images = await writeImages(dir, specs);
  const limit = pLimit(opts.concurrency ?? 2);
  try {
    return await Promise.all(
      images.map((img) =>
        limit(async () => {
          const dest = `${registryHost}/${img.repository}:${img.tag}`;
          const args = [
            '--insecure-policy',
            'copy',
            '--all',
            '--preserve-digests',
            '--dest-tls-verify=false',
            '--retry-times',
            '2',
          ];
          if (opts.creds) args.push('--dest-creds', `${opts.creds.username}:${opts.creds.password}`);
          args.push(`dir:${img.dir}`, `docker://${dest}`);
          await execa(skopeo, args, { env: { ...process.env, XDG_RUNTIME_DIR: opts.workDir }, stdin: 'ignore' });
          const { dir: _dir, ...rest } = img;
          return { ...rest, testRef: dest };
        }),
      ),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
