// `sealift bundle`: the pipeline reads as the stages.
//   requests (image lock or list) -> planImagePulls (pure platform rules) -> site files
//   (generated helmfile and values, charts at their pins, release files) -> pullImages into one
//   OCI layout (dedupe, verify, resume) -> image lists with resolved digests -> bundle.json ->
//   checksums.sha256 -> tar (optionally gzip, split), all assembled in <out>/<name>.work/ which a
//   failed or killed run leaves for the re-run to continue from. A packed bundle (the default)
//   reads only the manifests into the work layout, lays the tar out from their sizes and writes
//   each blob from the registry straight into its place in the tar (pack.ts): no byte twice.
import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { checkOutputDir, checkOutputFile } from '../fs-paths.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { acquireWorkLock } from '../work-lock.ts';
import { pathExists, writeFileAtomic } from '../fs-atomic.ts';
import type { Readable } from 'node:stream';
import { SEALIFT_VERSION } from '../runtime.ts';
import { noEvents, type EventSink, type RunOptions } from '../events.ts';
import type { ImageLock } from '../images/lock.ts';
import { OciLayout, ANNOTATION_SOURCE } from '../oci/layout.ts';
import type { RegistryOptions } from '../oci/registry.ts';
import { formatPlatform, type Descriptor, type Digest, type PlatformSelection } from '../oci/types.ts';
import {
  BUNDLE_FORMAT_VERSION,
  BUNDLE_INDEX_FILE,
  LAYOUT_DIR,
  blobPath,
  openBundleArchive,
  serializeBundleIndex,
  type BundleArchive,
  type BundleImageEntry,
  type BundleIndex,
} from '../bundle-format/index.ts';
import {
  COMPRESSED_SUFFIX,
  COMPRESSIONS,
  entriesOf,
  packEntries,
  writeChecksums,
  type Compression,
  type PackEntry,
  type PackResult,
} from './pack.ts';
import { pullImages, type PullSummary } from './pull.ts';
import { planImagePulls, readImageRequests, requestsFromLock, type ImageRequest } from './requests.ts';
import { assembleSiteFiles, type SiteFiles } from './site.ts';
import { assembleSiteTools, DEFAULT_SITE_PLATFORMS } from './site-tools.ts';
import { signBundleDir, type SigningKey } from './sign.ts';
import { applySince, checkSinceRegistry, planSiteToolsSince, readSince } from './since.ts';

export const TOOL_VERSION = SEALIFT_VERSION;

export type { BundleImageEntry, BundleIndex } from '../bundle-format/index.ts';

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
  /** the whole tar compressed (default none: layers are compressed already) */
  compress?: Compression;
  registry?: RegistryOptions;
  /** keep <name>.work/ after packing (default: removed) */
  keepWork?: boolean;
  /** stop after the work directory is complete (no tar): a directory bundle */
  noPack?: boolean;
  /** platforms to carry the site tools for (default linux/amd64); [] leaves them out */
  sitePlatforms?: readonly string[];
  /** sign checksums.sha256 (checksums.sha256.sig in the tar, right after it): loadSigningKey */
  signKey?: SigningKey;
  /** false: leave out what refers to the images (signatures, attestations, SBOMs) */
  referrers?: boolean;
  /** an incremental bundle: a site receipt, a previous bundle or its bundle.json (since.ts) */
  since?: string;
}

export interface BundleResult {
  name: string;
  workDir: string;
  index: BundleIndex;
  pack?: PackResult;
  bytesTransferred: number;
  /** the key checksums.sha256 was signed with (file and public fingerprint; never the key) */
  signature?: { key: string; fingerprint: string };
}

function bundleName(opts: BundleOptions): string {
  const name =
    opts.name ??
    opts.env ??
    (opts.imagelist ? basename(opts.imagelist).replace(/(\.lock)?\.(json|txt)$/, '') || 'images' : 'images');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new SealiftError('USAGE', `bundle name "${name}" may hold only letters, digits, ".", "_" and "-"`);
  return name;
}

/** The lock the bundle carries: every reference with the digest the site will resolve. */
function resolvedLock(
  environment: string,
  requests: readonly ImageRequest[],
  pulled: PullSummary,
  base?: ImageLock,
): ImageLock {
  const digests = new Map(pulled.images.map((p) => [p.pull.request.reference, p.result.root.digest]));
  // bytes of the blobs carried (what `mirror --shard` balances by): known here, at no extra request
  const sizes = new Map(
    pulled.images.map((p) => [p.pull.request.reference, p.result.blobs.reduce((n, b) => n + b.size, 0)]),
  );
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
        ...(sizes.has(r.reference) ? { size: sizes.get(r.reference)! } : {}),
      };
    }),
    // the inferred knobs the carried values were generated with (verify at the site renders with them)
    ...(base?.knobs ? { knobs: base.knobs } : {}),
    ...(base?.knobValues ? { knobValues: base.knobValues } : {}),
  };
}

/** Drops index entries and blobs an earlier run of a different list left in the work layout. */
async function pruneLayout(layout: OciLayout, pulled: PullSummary, referrers: Set<string>): Promise<void> {
  const keepRefs = new Set(pulled.images.map((p) => p.pull.request.reference));
  const keep = new Set<string>(referrers);
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
  for (const b of await layout.listBlobs()) if (!keep.has(b.digest)) await layout.removeBlob(b.digest);
}

/**
 * One run at a time per bundle: `<out>/<name>.lock` is held from the first read of the work dir
 * to the last rename of the tar, so two runs into one output never mix their files.
 */
export async function createBundle(opts: BundleOptions): Promise<BundleResult> {
  if (!opts.imagelist && !opts.env)
    throw new SealiftError('USAGE', 'bundle needs an environment (-e) or an image list (--imagelist)');
  if (opts.imagelist && opts.env) throw new SealiftError('USAGE', 'give either -e <env> or --imagelist FILE, not both');
  if (opts.env) {
    // an unknown environment is named as such (with the known ones), not as a missing lock
    const { requireEnvironment } = await import('../config/index.ts');
    await requireEnvironment(opts.stackDir ?? '.', opts.env);
  }
  const target = join(opts.outDir, bundleName(opts));
  // every output path before any work: a bad one fails now, not after the pull
  await checkOutputDir(opts.outDir, '-o');
  for (const c of COMPRESSIONS)
    for (const f of [`${target}.tar${COMPRESSED_SUFFIX[c]}`, `${target}.tar${COMPRESSED_SUFFIX[c]}.sha256`])
      await checkOutputFile(f, '-o');
  await checkOutputDir(`${target}.work`, '-o');
  await mkdir(opts.outDir, { recursive: true });
  const lock = await acquireWorkLock(target, `bundle ${target}`);
  if (lock.tookOverFrom)
    opts.onEvent?.({
      type: 'warn',
      message: `${lock.file}: took over from an earlier run that is gone (pid ${lock.tookOverFrom.pid}); continuing its work`,
    });
  try {
    return await buildBundle(opts);
  } finally {
    await lock.release();
  }
}

async function buildBundle(opts: BundleOptions): Promise<BundleResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const name = bundleName(opts);
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
  // incremental: what the site holds, read before anything is fetched (a bad --since fails now)
  const held = opts.since ? await readSince(opts.since) : undefined;
  await mkdir(workDir, { recursive: true });

  // 2. site files first: charts and release files are small, and a bad pin fails before the long part.
  // Everything but the image layout is rebuilt on every run, so nothing stale is packed.
  for (const entry of await readdir(workDir))
    if (entry !== LAYOUT_DIR) await rm(join(workDir, entry), { recursive: true, force: true });
  // the site's tools first of all: one that is missing fails before anything is fetched
  const sitePlatforms = opts.sitePlatforms ?? DEFAULT_SITE_PLATFORMS;
  // (a packed bundle copies them from where they are straight into the tar)
  const packed = !opts.noPack;
  const tools = sitePlatforms.length
    ? await assembleSiteTools({ ...(packed ? {} : { workDir }), platforms: sitePlatforms, onEvent })
    : null;
  let siteTools = tools ? { platforms: tools.platforms, files: tools.files } : null;
  let unchangedTools: NonNullable<BundleIndex['base']>['siteTools'] = [];
  if (held && siteTools)
    ({ carried: siteTools, unchanged: unchangedTools } = await planSiteToolsSince(workDir, siteTools, held));
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

  // a receipt of another registry than the one the values name: refused before the long part
  if (held) checkSinceRegistry(held, opts.since!, site.registry?.host);

  // 3. images (the long part): a killed run resumes here, skipping every stored blob. Packed:
  // only the manifests now (the plan, with every blob's size), the blobs into the tar in step 6.
  const layout = await OciLayout.open(join(workDir, LAYOUT_DIR));
  // model images (the environment's models:) are built by sealift, the rest pulled
  const { splitModelPulls, buildModelPulls } = await import('./models.ts');
  const split = splitModelPulls(pulls);
  const pulled = await pullImages(split.images, {
    layout,
    registry: opts.registry ?? {},
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    onEvent,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(packed ? { mode: 'manifests' as const } : {}),
  });
  // what refers to the pulled images (signatures, attestations, SBOMs), beside them in the layout
  const { pullReferrers } = await import('./referrers.ts');
  const referrers =
    opts.referrers === false
      ? undefined
      : await pullReferrers(pulled.images, {
          layout,
          registry: opts.registry ?? {},
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          onEvent,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
  if (opts.env) {
    const { loadEnvironment } = await import('../config/index.ts');
    const env = await loadEnvironment(opts.stackDir ?? '.', opts.env, opts.overlays ? { overlays: opts.overlays } : {});
    const models = await buildModelPulls(split.models, env, layout, {
      onEvent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    pulled.images.push(...models.images);
    for (const [d, n] of models.blobs) pulled.blobs.set(d, n);
  } else if (split.models.length > 0) {
    throw new SealiftError(
      'USAGE',
      `${split.models[0]!.request.reference} is a model image: bundle builds it from an environment's models`,
      {
        hint: 'Bundle with -e <env>; an image list cannot say where the model files are.',
      },
    );
  }
  await pruneLayout(layout, pulled, referrers?.digests ?? new Set());
  await layout.cleanIngest();
  const since = held
    ? await applySince(layout, pulled.images, held, unchangedTools, { removeFromLayout: !packed })
    : undefined;
  const carried = [...pulled.blobs].filter(([d]) => !since || since.carry.has(d));

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
    ...(referrers?.byImage.has(pull.request.reference)
      ? { referrers: referrers.byImage.get(pull.request.reference) }
      : {}),
  }));
  const blobBytes = carried.reduce((a, [, b]) => a + b, 0);
  const imageBytes = images.reduce((n, i) => n + i.bytes, 0);
  const index: BundleIndex = {
    version: BUNDLE_FORMAT_VERSION,
    tool: { name: 'sealift', version: TOOL_VERSION },
    createdAt: new Date().toISOString(),
    environment: opts.env ?? null,
    registry: site.registry ?? null,
    platforms: opts.platforms.kind === 'all' ? 'all' : opts.platforms.platforms.map(formatPlatform),
    charts: site.charts,
    files: site.files,
    siteTools,
    images,
    ...(since ? { base: since.base } : {}),
    totals: {
      images: images.length,
      blobs: carried.length,
      blobBytes,
      imageBytes,
      savedBySharing: imageBytes - blobBytes,
      charts: site.charts.length,
      files: site.files.length,
    },
  };
  await writeFileAtomic(join(workDir, BUNDLE_INDEX_FILE), serializeBundleIndex(index));

  // 6. checksums and the tar
  onEvent({ type: 'phase', name: 'checksums' });
  const signature = opts.signKey ? { signature: opts.signKey.toJSON() } : {};
  if (!packed) {
    await writeChecksums(workDir);
    if (opts.signKey) await signBundleDir(workDir, opts.signKey);
    return { name, workDir, index, bytesTransferred: pulled.bytesTransferred, ...signature };
  }
  // what the tar holds that the work dir does not: the blobs still to fetch (a blob an earlier
  // --no-pack run left there, once verified, is copied from it) and the site tools
  const extra: PackEntry[] = [];
  for (const [digest, size] of carried) {
    if (await layout.hasBlob({ digest: digest as Digest, size })) continue;
    extra.push({ path: blobPath(digest as Digest), size, mode: 0o644, sha256: digest.slice('sha256:'.length) });
  }
  for (const f of siteTools?.files ?? [])
    extra.push({ path: f.path, size: f.size, mode: 0o755, sha256: f.sha256, from: tools!.sources.get(f.path)! });
  // an incremental bundle's manifests the site holds stay in the work layout (the blob pass
  // walks the graphs through them) but are not carried
  const absent = new Set((since?.base.absent ?? []).map((a) => blobPath(a.digest as Digest)));
  await writeChecksums(workDir, extra, absent);
  if (opts.signKey) await signBundleDir(workDir, opts.signKey);
  let bytesTransferred = pulled.bytesTransferred;
  // model images were built into the work layout: their blobs are local files already
  const blobPulls = pulled.images
    .filter(({ pull }) => !split.models.includes(pull))
    .map(({ pull, result }) => ({
      ...pull,
      // the planned graph exactly: its root (the platform's manifest, or the reduced index), every child
      selector: result.root.digest,
      platforms: { kind: 'all' as const },
    }));
  // the tar an earlier run finished (an older bundle of the same name): its blobs are copied,
  // not fetched again
  const previous = await openPreviousTar(join(opts.outDir, `${name}.tar`), onEvent);
  // the blob pass fetches image by image, in list order: each image's blobs, then the manifests
  // over them (each sorted by digest: an index's children are read at once, so the order within
  // an image differs from run to run, and the layout must not)
  const sorted = (ds: readonly Descriptor[]) => ds.map((d) => d.digest as string).sort();
  const blobOrder = pulled.images.flatMap(({ result }) => [...sorted(result.blobs), ...sorted(result.manifests)]);
  const pack = await packEntries({
    output: join(opts.outDir, `${name}.tar`),
    blobOrder,
    ...(previous ? { reuse: previous.reuse } : {}),
    entries: [...(await entriesOf(workDir, { withChecksums: true })).filter((e) => !absent.has(e.path)), ...extra],
    ...(opts.compress ? { compress: opts.compress } : {}),
    ...(opts.splitSize ? { splitSize: opts.splitSize } : {}),
    onEvent,
    writeImages: async (tarTarget) => {
      // what an incremental bundle does not carry counts as there
      const target = since
        ? { ...tarTarget, hasBlob: async (d: Descriptor) => !since.carry.has(d.digest) || tarTarget.hasBlob(d) }
        : tarTarget;
      const fetched = await pullImages(blobPulls, {
        layout,
        registry: opts.registry ?? {},
        ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
        onEvent,
        ...(opts.signal ? { signal: opts.signal } : {}),
        mode: 'blobs',
        target,
        diskDir: opts.outDir,
      });
      bytesTransferred += fetched.bytesTransferred;
    },
  });
  await previous?.archive.close();
  if (!opts.keepWork) await rm(workDir, { recursive: true, force: true });
  return { name, workDir, index, pack, bytesTransferred, ...signature };
}

/** An uncompressed bundle already under this name (or its parts), opened to copy blobs out of. */
async function openPreviousTar(
  tar: string,
  onEvent: EventSink,
): Promise<{ archive: BundleArchive; reuse: (path: string, size: number) => Readable | undefined } | undefined> {
  const first = [tar, `${tar}.part-000`];
  for (const f of first) {
    if (!(await pathExists(f))) continue;
    try {
      const archive = await openBundleArchive(f);
      return {
        archive,
        reuse: (path, size) => (archive.lookup(path)?.size === size ? archive.open(path) : undefined),
      };
    } catch (e) {
      onEvent({ type: 'warn', message: `${f}: not reused (${errorMessage(e)}); every blob is fetched` });
    }
  }
  return undefined;
}

export { verifyBundle, type BundleVerifyResult } from './verify.ts';
export { loadSigningKey, signBundle, signChecksums, type SigningKey, type SignBundleResult } from './sign.ts';
export { parseSize, COMPRESSIONS, type Compression } from './pack.ts';
export { inspectBundle, diffBundleFiles, type BundleInspection, type BundleDiffResult } from './inspect.ts';
