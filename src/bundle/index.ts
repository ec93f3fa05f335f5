// `sealift bundle`: the pipeline reads as the stages.
//   requests (image lock or list) -> planImagePulls (pure platform rules) -> site files
//   (generated helmfile and values, charts at their pins, release files) -> pullImages into one
//   OCI layout (dedupe, verify, resume) -> image lists with resolved digests -> bundle.json ->
//   checksums.sha256 -> tar (optionally gzip, split), all assembled in <out>/<name>.work/ which a
//   failed or killed run leaves for the re-run to continue from.
import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SealiftError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { SEALIFT_VERSION } from '../runtime.ts';
import { noEvents, type RunOptions } from '../events.ts';
import type { ImageLock } from '../images/lock.ts';
import { OciLayout, ANNOTATION_SOURCE } from '../oci/layout.ts';
import type { RegistryOptions } from '../oci/registry.ts';
import { formatPlatform, type PlatformSelection } from '../oci/types.ts';
import { BUNDLE_INDEX_FILE, LAYOUT_DIR, packBundle, writeChecksums, type PackResult } from './pack.ts';
import { pullImages, type PullSummary } from './pull.ts';
import { planImagePulls, readImageRequests, requestsFromLock, type ImageRequest } from './requests.ts';
import { assembleSiteFiles, type SiteFiles } from './site.ts';
import { assembleSiteTools, DEFAULT_SITE_PLATFORMS, type SiteToolsIndex } from './site-tools.ts';

export const TOOL_VERSION = SEALIFT_VERSION;

export interface BundleImageEntry {
  /** the source reference (normalized), as in images/index.json io.sealift.source */
  reference: string;
  releases: string[];
  /** what the site resolves the tag to, and that manifest's media type and size */
  digest: string;
  mediaType: string;
  size: number;
  /** the digest upstream served for the reference (differs when an index was reduced) */
  sourceDigest: string;
  selection: 'exact' | 'platform' | 'reduced-index';
  platforms: string[];
  /** layers and configs of this image, and their bytes */
  blobs: number;
  bytes: number;
}

export interface BundleIndex {
  version: 1;
  tool: { name: 'sealift'; version: string };
  createdAt: string;
  environment: string | null;
  /** the environment's registry (null: none, or an image-list bundle): the host the carried values
   *  name and the naming scheme they use; load defaults --scheme from it and checks --registry */
  registry: { host: string; plainHttp: boolean; scheme: 'host-swap' | 'scoped' } | null;
  platforms: string[] | 'all';
  charts: SiteFiles['charts'];
  files: SiteFiles['files'];
  /** the tools carried for the site (bin/<os>-<arch>/...); null: left out (--no-site-tools) */
  siteTools: SiteToolsIndex | null;
  images: BundleImageEntry[];
  totals: {
    images: number;
    /** unique blobs stored */
    blobs: number;
    blobBytes: number;
    /** what the images would take stored one by one */
    imageBytes: number;
    savedBySharing: number;
    charts: number;
    files: number;
  };
}

export interface BundleOptions extends RunOptions {
  /** output directory (default bundles/) */
  outDir: string;
  /** bundle file name without .tar (default: the environment, or the image list's base name) */
  name?: string;
  /** images only: a text list or an image lock (.json) */
  imagelist?: string;
  /** environment mode: stack dir (environments/, templates/, imagelists/) and environment name */
  stackDir?: string;
  env?: string;
  /** extra environment files merged last (source overrides), as for generate and images */
  overlays?: string[];
  /** where imagelists/<env>.lock.json and imagelists/<env>/ are (default <stack>/imagelists) */
  imagelistsDir?: string;
  platforms: PlatformSelection;
  concurrency?: number;
  splitSize?: number;
  gzip?: boolean;
  registry?: RegistryOptions;
  /** keep <name>.work/ after packing (default: removed) */
  keepWork?: boolean;
  /** stop after the work directory is complete (no tar): a directory bundle */
  noPack?: boolean;
  /** platforms to carry the site tools for (default linux/amd64); [] leaves them out */
  sitePlatforms?: readonly string[];
}

export interface BundleResult {
  name: string;
  workDir: string;
  index: BundleIndex;
  pack?: PackResult;
  bytesTransferred: number;
}

function bundleName(opts: BundleOptions): string {
  if (opts.name) return opts.name;
  if (opts.env) return opts.env;
  if (opts.imagelist) return basename(opts.imagelist).replace(/(\.lock)?\.(json|txt)$/, '') || 'images';
  return 'images';
}

/** The lock the bundle carries: every reference with the digest the site will resolve. */
function resolvedLock(
  environment: string,
  requests: readonly ImageRequest[],
  pulled: PullSummary,
  base?: ImageLock,
): ImageLock {
  const digests = new Map(pulled.images.map((p) => [p.pull.request.reference, p.result.root.digest]));
  const whyBy = new Map((base?.images ?? []).map((e) => [e.reference, e]));
  return {
    version: 1,
    environment,
    images: requests.map((r) => {
      const prev = whyBy.get(r.reference) ?? [...whyBy.values()].find((e) => e.reference === r.ref.original);
      return {
        ...(prev ?? {}),
        reference: prev?.reference ?? r.reference,
        releases: r.releases,
        why: prev?.why ?? [],
        digest: digests.get(r.reference) ?? '',
      };
    }),
  };
}

/** Drops index entries and blobs an earlier run of a different list left in the work layout. */
async function pruneLayout(layout: OciLayout, pulled: PullSummary): Promise<void> {
  const keepRefs = new Set(pulled.images.map((p) => p.pull.request.reference));
  const keep = new Set<string>();
  for (const p of pulled.images) {
    for (const d of [...p.result.blobs, ...p.result.manifests]) keep.add(d.digest);
  }
  const idx = await layout.readIndex();
  // in the order of the list, whatever order the pulls finished in: a reader that takes the
  // first entry for a tag (skopeo's oci: transport) sees the same image on every run
  const order = new Map(pulled.images.map((p, i) => [p.pull.request.reference, i]));
  const rank = (m: { annotations?: Record<string, string> }) =>
    order.get(m.annotations?.[ANNOTATION_SOURCE] ?? '') ?? -1;
  const manifests = idx.manifests
    .filter((m) => keepRefs.has(m.annotations?.[ANNOTATION_SOURCE] ?? ''))
    .sort((a, b) => rank(a) - rank(b));
  await writeFileAtomic(join(layout.dir, 'index.json'), `${JSON.stringify({ ...idx, manifests }, null, 2)}\n`);
  for (const b of await layout.listBlobs())
    if (!keep.has(b.digest)) await rm(layout.blobPath(b.digest), { force: true });
}

export async function createBundle(opts: BundleOptions): Promise<BundleResult> {
  const onEvent = opts.onEvent ?? noEvents;
  if (!opts.imagelist && !opts.env)
    throw new SealiftError('USAGE', 'bundle needs an environment (-e) or an image list (--imagelist)');
  if (opts.imagelist && opts.env) throw new SealiftError('USAGE', 'give either -e <env> or --imagelist FILE, not both');
  const name = bundleName(opts);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new SealiftError('USAGE', `bundle name "${name}" may hold only letters, digits, ".", "_" and "-"`);
  const workDir = join(opts.outDir, `${name}.work`);

  // 1. what to bundle
  let requests: ImageRequest[];
  let lock: ImageLock | undefined;
  let site: SiteFiles = { charts: [], files: [], imagelists: [] };
  if (opts.imagelist) {
    const read = await readImageRequests(opts.imagelist);
    requests = read.requests;
    lock = read.lock;
  } else {
    const stackDir = opts.stackDir ?? '.';
    const lockFile = join(opts.imagelistsDir ?? join(stackDir, 'imagelists'), `${opts.env}.lock.json`);
    const { readImageLock } = await import('../images/lock.ts');
    lock = await readImageLock(lockFile);
    requests = requestsFromLock(lock, lockFile);
  }
  const pulls = planImagePulls(requests, opts.platforms);
  await mkdir(workDir, { recursive: true });

  // 2. site files first: charts and release files are small, and a bad pin fails before the long part.
  // Everything but the image layout is rebuilt on every run, so nothing stale is packed.
  for (const entry of await readdir(workDir))
    if (entry !== LAYOUT_DIR) await rm(join(workDir, entry), { recursive: true, force: true });
  // the site's tools first of all: one that is missing fails before anything is fetched
  const sitePlatforms = opts.sitePlatforms ?? DEFAULT_SITE_PLATFORMS;
  const siteTools = sitePlatforms.length
    ? await assembleSiteTools({ workDir, platforms: sitePlatforms, onEvent })
    : null;
  if (opts.env) {
    site = await assembleSiteFiles({
      stackDir: opts.stackDir ?? '.',
      env: opts.env,
      workDir,
      onEvent,
      ...(opts.overlays ? { overlays: opts.overlays } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  // 3. images (the long part): a killed run resumes here, skipping every stored blob
  const layout = await OciLayout.open(join(workDir, LAYOUT_DIR));
  const pulled = await pullImages(pulls, {
    layout,
    registry: opts.registry ?? {},
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    onEvent,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  await pruneLayout(layout, pulled);
  await layout.cleanIngest();

  // 4. image lists: the lock with resolved digests, plus the lists it came from
  const listName = opts.env ?? name;
  await rm(join(workDir, 'imagelists'), { recursive: true, force: true });
  await writeFileAtomic(
    join(workDir, 'imagelists', `${listName}.lock.json`),
    `${JSON.stringify(resolvedLock(listName, requests, pulled, lock), null, 2)}\n`,
  );
  if (opts.imagelist && !opts.imagelist.endsWith('.json'))
    await cp(opts.imagelist, join(workDir, 'imagelists', basename(opts.imagelist)));
  if (opts.env) {
    const lists = join(opts.imagelistsDir ?? join(opts.stackDir ?? '.', 'imagelists'), opts.env);
    if (
      await stat(lists).then(
        (s) => s.isDirectory(),
        () => false,
      )
    ) {
      for (const f of (await readdir(lists)).filter((n) => n.endsWith('.txt')))
        await cp(join(lists, f), join(workDir, 'imagelists', opts.env, f));
    }
  }

  // 5. bundle.json
  const images: BundleImageEntry[] = pulled.images.map(({ pull, result }) => ({
    reference: pull.request.reference,
    releases: pull.request.releases,
    digest: result.root.digest,
    mediaType: result.root.mediaType,
    size: result.root.size,
    sourceDigest: result.source.digest,
    selection: result.kind,
    platforms: result.platforms,
    blobs: result.blobs.length,
    bytes: result.blobs.reduce((n, b) => n + b.size, 0),
  }));
  const blobBytes = [...pulled.blobs.values()].reduce((a, b) => a + b, 0);
  const imageBytes = images.reduce((n, i) => n + i.bytes, 0);
  const index: BundleIndex = {
    version: 1,
    tool: { name: 'sealift', version: TOOL_VERSION },
    createdAt: new Date().toISOString(),
    environment: opts.env ?? null,
    registry: site.registry ?? null,
    platforms: opts.platforms.kind === 'all' ? 'all' : opts.platforms.platforms.map(formatPlatform),
    charts: site.charts,
    files: site.files,
    siteTools,
    images,
    totals: {
      images: images.length,
      blobs: pulled.blobs.size,
      blobBytes,
      imageBytes,
      savedBySharing: imageBytes - blobBytes,
      charts: site.charts.length,
      files: site.files.length,
    },
  };
  await writeFileAtomic(join(workDir, BUNDLE_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);

  // 6. checksums and the tar
  onEvent({ type: 'phase', name: 'checksums' });
  await writeChecksums(workDir);
  if (opts.noPack) return { name, workDir, index, bytesTransferred: pulled.bytesTransferred };
  const pack = await packBundle({
    root: workDir,
    output: join(opts.outDir, `${name}.tar`),
    ...(opts.gzip ? { gzip: true } : {}),
    ...(opts.splitSize ? { splitSize: opts.splitSize } : {}),
    onEvent,
  });
  if (!opts.keepWork) await rm(workDir, { recursive: true, force: true });
  return { name, workDir, index, pack, bytesTransferred: pulled.bytesTransferred };
}

export { verifyBundle, type BundleVerifyResult } from './verify.ts';
export { parseSize } from './pack.ts';
