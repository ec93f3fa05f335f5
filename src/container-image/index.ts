// The sealift container image, built by sealift itself into an OCI layout: an image index of one
// manifest per platform (linux/amd64, linux/arm64), each of two layers:
//   base        what the single executable needs and nothing else: the loader and the shared
//               libraries it links (src/container-image/libraries.ts, from its ELF headers) under
//               /lib/<triplet>/ with the loader's own path as a symlink, CA certificates,
//               /etc/passwd and /etc/group with the non-root user 65532, and /tmp (1777: sealift
//               writes its built-in files and caches there)
//   sealift     /sealift, the entrypoint, run as 65532:65532
// Every byte is a function of the inputs (the files' contents, version, revision, source and
// the creation time, which the caller fixes from SOURCE_DATE_EPOCH or the commit): the layers
// come from the modelcar's layer writer (fixed mtimes and owners, sorted entries, fixed gzip
// level, no gzip timestamp), JSON in a fixed key order. Same inputs, same digest. The layout is
// written beside `out` and swapped in whole: nothing half-written, no blob of an older build left.
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SealiftError } from '../errors.ts';
import { replaceDirAtomic } from '../fs-atomic.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { putJson, writeLayer, type LayerEntry } from '../models/index.ts';
import { copyImage } from '../oci/copy.ts';
import { dockerCredentials } from '../oci/credentials.ts';
import { ANNOTATION_REF_NAME, OciLayout, VERIFIED_DIR } from '../oci/layout.ts';
import { normalizeImageReference } from '../oci/reference.ts';
import { closeRegistryConnections, RegistryClient } from '../oci/registry.ts';
import { layoutSource, registryTarget } from '../oci/stores.ts';
import { MediaTypes, type Descriptor, type Digest } from '../oci/types.ts';
import { libraryDirsFor, linkedFiles, type LinkedFiles } from './libraries.ts';

export { libraryDirsFor, linkedFiles, TRIPLETS, type LinkedFiles, type SharedLibrary } from './libraries.ts';

/** The non-root user the image runs as (distroless' `nonroot`; the chart's runAsUser). */
export const IMAGE_USER = 65532;
export const IMAGE_ENTRYPOINT = '/sealift';
export const CA_CERTIFICATES = 'etc/ssl/certs/ca-certificates.crt';

export interface PlatformExecutable {
  /** linux/amd64 or linux/arm64 */
  platform: string;
  /** the single executable for it (dist/sealift-linux-<arch>) */
  executable: string;
  /** where its libraries are looked up (default: libraryDirsFor its architecture) */
  libraryDirs?: string[];
}

export interface SealiftImageOptions extends RunOptions {
  /** the OCI layout directory written (replaced whole) */
  out: string;
  platforms: PlatformExecutable[];
  /** the CA bundle copied to /etc/ssl/certs/ca-certificates.crt */
  caCertificates: string;
  version: string;
  /** the commit the executables were built from */
  revision: string;
  /** where the sources are (org.opencontainers.image.source); left out when unknown */
  source?: string;
  licenses?: string;
  /** the image's creation time: SOURCE_DATE_EPOCH or the commit's time, never the clock */
  created: Date;
  /** the tag in index.json (org.opencontainers.image.ref.name); default the version */
  tag?: string;
  /** gzip level of the layers (default 6) */
  level?: number;
}

export interface PlatformImage {
  platform: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  linked: LinkedFiles;
}

export interface SealiftImage {
  layout: string;
  tag: string;
  index: Descriptor;
  images: PlatformImage[];
  annotations: Record<string, string>;
}

function parsePlatform(p: string): { os: string; architecture: string } {
  const m = /^linux\/(amd64|arm64)$/.exec(p);
  if (!m)
    throw new SealiftError('USAGE', `the sealift image is built for linux/amd64 and linux/arm64, not "${p}"`, {
      hint: 'Give --platform linux/amd64 and/or --platform linux/arm64.',
    });
  return { os: 'linux', architecture: m[1] as string };
}

/** passwd and group: root, and the user the image runs as (home /tmp: the one writable place). */
const PASSWD = `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${IMAGE_USER}:${IMAGE_USER}:nonroot:/tmp:/sbin/nologin\n`;
const GROUP = `root:x:0:\nnonroot:x:${IMAGE_USER}:\n`;

/** `entries` with a directory entry for every parent they need, sorted (parents before children). */
function withParents(entries: LayerEntry[]): LayerEntry[] {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const e of entries) {
    for (let d = dirname(e.path); d !== '.' && d !== '/'; d = dirname(d))
      if (!byPath.has(d)) byPath.set(d, { type: 'dir', path: d, mode: 0o755 });
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function fileEntry(path: string, source: string, mode: number): Promise<LayerEntry> {
  return { type: 'file', path, mode, size: (await stat(source)).size, source };
}

/** The base layer's entries: loader, libraries, CA certificates, passwd, group, /tmp. */
async function baseEntries(linked: LinkedFiles, etc: { passwd: string; group: string }, ca: string) {
  const libDir = `lib/${linked.triplet}`;
  const loader = linked.interpreter.path.replace(/^\/+/, '');
  const loaderName = loader.slice(loader.lastIndexOf('/') + 1);
  const entries: LayerEntry[] = [
    await fileEntry(`${libDir}/${loaderName}`, linked.interpreter.file, 0o755),
    ...(await Promise.all(linked.libraries.map((l) => fileEntry(`${libDir}/${l.soname}`, l.file, 0o644)))),
    await fileEntry(CA_CERTIFICATES, ca, 0o644),
    await fileEntry('etc/passwd', etc.passwd, 0o644),
    await fileEntry('etc/group', etc.group, 0o644),
    { type: 'dir', path: 'tmp', mode: 0o1777 },
  ];
  if (loader !== `${libDir}/${loaderName}`) {
    // the loader where the executable names it (/lib64/ld-linux-x86-64.so.2), as Debian links it
    const up = '../'.repeat(loader.split('/').length - 1);
    entries.push({ type: 'symlink', path: loader, target: `${up}${libDir}/${loaderName}` });
  }
  return withParents(entries);
}

export async function buildSealiftImage(opts: SealiftImageOptions): Promise<SealiftImage> {
  const onEvent = opts.onEvent ?? noEvents;
  if (opts.platforms.length === 0) throw new SealiftError('USAGE', 'the sealift image needs at least one platform');
  const created = opts.created.toISOString().replace(/\.000Z$/, 'Z');
  const tag = opts.tag ?? opts.version;
  const annotations: Record<string, string> = {
    'org.opencontainers.image.created': created,
    'org.opencontainers.image.description':
      'sealift: carries a Kubernetes stack across an air gap; this image runs `sealift mirror` as a (Cron)Job',
    ...(opts.licenses ? { 'org.opencontainers.image.licenses': opts.licenses } : {}),
    'org.opencontainers.image.revision': opts.revision,
    ...(opts.source ? { 'org.opencontainers.image.source': opts.source } : {}),
    'org.opencontainers.image.title': 'sealift',
    'org.opencontainers.image.version': opts.version,
  };
  let result: SealiftImage | undefined;
  await replaceDirAtomic(opts.out, async (dir) => {
    const layout = await OciLayout.open(dir);
    const work = join(dir, '.ingest');
    const etc = { passwd: join(work, 'passwd'), group: join(work, 'group') };
    await mkdir(work, { recursive: true });
    await writeFile(etc.passwd, PASSWD);
    await writeFile(etc.group, GROUP);
    const images: PlatformImage[] = [];
    for (const p of opts.platforms) {
      const platform = parsePlatform(p.platform);
      onEvent({ type: 'phase', name: `sealift image for ${p.platform}` });
      const linked = await linkedFiles(p.executable, p.libraryDirs ?? libraryDirsFor(platform.architecture));
      if (linked.architecture !== platform.architecture)
        throw new SealiftError(
          'CONFIG_INVALID',
          `${p.executable} is an ${linked.architecture} executable, not ${p.platform}`,
          { hint: `Give the linux/${platform.architecture} build (dist/sealift-linux-${platform.architecture}).` },
        );
      const layers: { entries: LayerEntry[]; createdBy: string }[] = [
        {
          entries: await baseEntries(linked, etc, opts.caCertificates),
          createdBy: `sealift: base: ${linked.interpreter.path} and ${linked.libraries.map((l) => l.soname).join(', ')}; CA certificates; user ${IMAGE_USER}; /tmp`,
        },
        {
          entries: [await fileEntry(IMAGE_ENTRYPOINT.slice(1), p.executable, 0o755)],
          createdBy: `sealift: ${IMAGE_ENTRYPOINT}, sealift ${opts.version} (${opts.revision}) as one executable`,
        },
      ];
      const written: Descriptor[] = [];
      const diffIds: string[] = [];
      for (const [i, l] of layers.entries()) {
        const file = join(work, `layer-${platform.architecture}-${i}`);
        const layer = await writeLayer(l.entries, file, { level: opts.level ?? 6 });
        const desc: Descriptor = {
          mediaType: MediaTypes.ociLayerGzip,
          digest: layer.digest as Digest,
          size: layer.size,
        };
        await layout.writeBlob(desc, createReadStream(file));
        await rm(file, { force: true });
        written.push(desc);
        diffIds.push(layer.diffId);
      }
      const config = await putJson(layout, MediaTypes.ociConfig, {
        created,
        architecture: platform.architecture,
        os: platform.os,
        config: {
          User: `${IMAGE_USER}:${IMAGE_USER}`,
          Entrypoint: [IMAGE_ENTRYPOINT],
          // a site CA bundle mounted over the image's is trusted too (Node keeps its own roots)
          Env: ['PATH=/', `NODE_EXTRA_CA_CERTS=/${CA_CERTIFICATES}`],
          WorkingDir: '/tmp',
          Labels: annotations,
        },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: layers.map((l) => ({ created, created_by: l.createdBy })),
      });
      const manifest = await putJson(layout, MediaTypes.ociManifest, {
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config,
        layers: written,
        annotations,
      });
      images.push({ platform: p.platform, manifest: { ...manifest, platform }, config, layers: written, linked });
    }
    const index = await putJson(layout, MediaTypes.ociIndex, {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: images.map((i) => ({
        mediaType: i.manifest.mediaType,
        digest: i.manifest.digest,
        size: i.manifest.size,
        platform: i.manifest.platform,
      })),
      annotations,
    });
    await layout.addManifest(index, { [ANNOTATION_REF_NAME]: tag });
    // the layout holds the image and nothing of how it was written
    await layout.cleanIngest();
    await rm(join(dir, VERIFIED_DIR), { recursive: true, force: true });
    result = { layout: opts.out, tag, index, images, annotations };
  });
  return result as SealiftImage;
}

/**
 * Pushes the image (the whole index, every platform) from its layout to `reference`
 * (HOST[:PORT]/REPO[:TAG], the tag defaulting to the layout's), with sealift's own copy engine:
 * what the registry has is skipped, every blob verified on the way. Credentials as everywhere
 * (REGISTRY_AUTH_FILE, the docker config). Returns the digest the registry now serves.
 */
export async function pushSealiftImage(
  image: Pick<SealiftImage, 'layout' | 'tag'>,
  reference: string,
  opts: RunOptions & { plainHttp?: boolean } = {},
): Promise<Digest> {
  const ref = normalizeImageReference(reference, 'the push reference');
  if (ref.digest)
    throw new SealiftError('USAGE', `push to a tag, not a digest: ${reference}`, {
      hint: 'e.g. registry.example.internal:5000/sealift/sealift:0.1.0',
    });
  const layout = await OciLayout.open(image.layout, { create: false });
  const client = new RegistryClient(ref.registry, {
    hosts: { [ref.registry]: { plainHttp: opts.plainHttp === true } },
    credentials: dockerCredentials(),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
  try {
    const result = await copyImage(layoutSource(layout), registryTarget(client, ref.repository), {
      selector: image.tag,
      tag: ref.tag ?? image.tag,
      platforms: { kind: 'all' },
      ref: reference,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return result.root.digest;
  } finally {
    await closeRegistryConnections();
  }
}
