// `sealift bundle --since BASE`: an incremental bundle carries only what the site lacks.
//   readSince     BASE -> what the site holds (SiteHoldings): a site receipt (exact: what load
//                 verified there, per repository), a previous bundle (.tar, parts or directory:
//                 its images' whole graphs) or its bundle.json (its images' root digests: an
//                 unchanged root means an unchanged graph)
//   planCarry     pure: each image's manifests and blobs, carried or absent (the base's)
//   applyCarry    drops the absent blobs from the work layout and returns bundle.json's `base`
//
// Per repository: a manifest is absent only when the site holds it in the image's own target
// repository (manifests are not mounted); a blob is absent when the site holds it in ANY of its
// repositories: load mounts it from there (a POST, no bytes). Load checks all of it at the target
// before it pushes anything (src/load/incremental.ts).
import { open, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SealiftError, errorMessage, isSealiftError } from '../errors.ts';
import {
  absentIndex,
  BUNDLE_INDEX_FILE,
  bundleIdentity,
  BundleSource,
  carriedGraph,
  looksLikeReceipt,
  openBundleArchive,
  parseBundleIndex,
  parseReceipt,
  RECEIPT_FILE,
  siteToolPath,
  type AbsentEntry,
  type BundleBase,
  type BundleIndex,
  type SiteToolsIndex,
} from '../bundle-format/index.ts';
import { planTargets, type NamingScheme } from '../oci/naming.ts';
import { formatImageReference, normalizeImageReference } from '../oci/reference.ts';
import type { OciLayout } from '../oci/layout.ts';
import type { CopyResult } from '../oci/copy.ts';
import type { Descriptor, Digest } from '../oci/types.ts';

export interface RepositoryHoldings {
  manifests: Set<string>;
  blobs: Set<string>;
}

/** What the site holds, as far as the base says. */
export interface SiteHoldings {
  base: Pick<BundleBase, 'identity' | 'from' | 'name' | 'createdAt' | 'environment' | 'registry' | 'parent'>;
  /** how images are named at the site: the receipt's load, or the base bundle's environment */
  naming: { host: string; scheme: NamingScheme };
  /** site repository -> digests there */
  repositories: Map<string, RepositoryHoldings>;
  /** site tool tar path -> sha256 */
  siteTools: Map<string, string>;
}

/** Stands in for the site host when a bundle base records none: only repository paths are compared. */
const ANY_HOST = 'site.invalid';

const sinceRefused = (path: string, why: string) =>
  new SealiftError('USAGE', `--since ${path}: ${why}`, {
    hint: `Give a site receipt (${RECEIPT_FILE}, written by \`sealift load --receipt\` or --extract-to), a previous bundle (.tar, .tar.part-000 or directory) or its bundle.json.`,
    details: { since: path },
  });

function repo(holdings: Map<string, RepositoryHoldings>, name: string): RepositoryHoldings {
  let r = holdings.get(name);
  if (!r) holdings.set(name, (r = { manifests: new Set(), blobs: new Set() }));
  return r;
}

/** The target repository of each source reference, as the site names it. */
export function siteRepositories(sources: readonly string[], naming: SiteHoldings['naming']): Map<string, string> {
  return new Map(
    planTargets(sources, naming.host, naming.scheme).map((t) => [formatImageReference(t.source), t.target.repository]),
  );
}

const key = (ref: string) => formatImageReference(normalizeImageReference(ref));

function toolsOf(index: BundleIndex): Map<string, string> {
  return new Map([
    ...(index.siteTools?.files ?? []).map((f) => [f.path, f.sha256] as const),
    ...(index.base?.siteTools ?? []).map((f) => [f.path, f.sha256] as const),
  ]);
}

function bundleBase(index: BundleIndex, bytes: Buffer, name: string): SiteHoldings['base'] {
  return {
    identity: bundleIdentity(bytes),
    from: 'bundle',
    name,
    createdAt: index.createdAt,
    environment: index.environment,
    registry: null,
    parent: index.base?.identity ?? null,
  };
}

/** What a previous bundle's bundle.json alone says: each image's root (and what its own base lacked). */
function holdingsOfIndex(index: BundleIndex, bytes: Buffer, name: string): SiteHoldings {
  const naming = { host: index.registry?.host ?? ANY_HOST, scheme: index.registry?.scheme ?? 'host-swap' };
  const repos = siteRepositories(
    index.images.map((i) => i.reference),
    naming,
  );
  const repositories = new Map<string, RepositoryHoldings>();
  for (const i of index.images) repo(repositories, repos.get(key(i.reference))!).manifests.add(i.digest);
  for (const a of index.base?.absent ?? [])
    for (const i of a.images) {
      const r = repos.get(key(i));
      if (r) repo(repositories, r)[a.kind === 'manifest' ? 'manifests' : 'blobs'].add(a.digest);
    }
  return { base: bundleBase(index, bytes, name), naming, repositories, siteTools: toolsOf(index) };
}

/** A previous bundle read in place: every image's whole graph (carried, and its own base's). */
async function holdingsOfBundle(path: string): Promise<SiteHoldings> {
  const archive = await openBundleArchive(path);
  try {
    const bytes = await archive.readSmall(BUNDLE_INDEX_FILE);
    const index = parseBundleIndex(bytes, archive.location);
    const held = holdingsOfIndex(index, bytes, basename(path));
    const source = new BundleSource(archive);
    const absent = absentIndex(index);
    const images = await source.listImages();
    const repos = siteRepositories(
      images.map((i) => i.source),
      held.naming,
    );
    for (const li of images) {
      const r = repo(held.repositories, repos.get(key(li.source))!);
      const g = await carriedGraph(source, li.descriptor, li.source, absent);
      for (const m of g.manifests) r.manifests.add(m.digest);
      for (const b of g.blobs) r.blobs.add(b.digest);
    }
    return held;
  } finally {
    await archive.close();
  }
}

/** Reads `--since`: a receipt, a bundle.json, or a bundle; anything else is refused, naming what it takes. */
export async function readSince(path: string): Promise<SiteHoldings> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw sinceRefused(path, 'does not exist');
  if (st.isDirectory()) {
    // a site dir (load --extract-to) holds the receipt; a bundle directory holds bundle.json
    const receipt = join(path, RECEIPT_FILE);
    if (
      !(await stat(join(path, BUNDLE_INDEX_FILE)).catch(() => undefined)) &&
      (await stat(receipt).catch(() => undefined))
    )
      return readSince(receipt);
    return holdingsOfBundle(path).catch((e: unknown) => {
      throw isSealiftError(e) && e.code === 'BUNDLE_INVALID'
        ? sinceRefused(path, `is no bundle directory (${e.message})`)
        : e;
    });
  }
  // JSON first (a receipt or a bundle.json is small); else a bundle tar
  const head = Buffer.alloc(1);
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, 1, 0);
  } finally {
    await fh.close();
  }
  if (head.toString() === '{') {
    const bytes = await readFile(path);
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      throw sinceRefused(path, `is not valid JSON (${errorMessage(e)})`);
    }
    if (looksLikeReceipt(raw)) return holdingsOfReceipt(parseReceipt(raw, path));
    const version = (raw as Record<string, unknown>).version;
    if (version === undefined || !('images' in (raw as object))) {
      throw sinceRefused(path, 'is JSON, but neither a site receipt nor a bundle.json');
    }
    return holdingsOfIndex(parseBundleIndex(bytes, path), bytes, basename(path));
  }
  try {
    return await holdingsOfBundle(path);
  } catch (e) {
    if (isSealiftError(e) && e.code === 'BUNDLE_INVALID')
      throw sinceRefused(path, `is neither JSON nor a readable bundle (${e.message})`);
    throw e;
  }
}

function holdingsOfReceipt(r: ReturnType<typeof parseReceipt>): SiteHoldings {
  const repositories = new Map<string, RepositoryHoldings>();
  for (const [name, h] of Object.entries(r.repositories))
    repositories.set(name, { manifests: new Set(h.manifests), blobs: new Set(h.blobs) });
  return {
    base: {
      identity: r.bundle.identity,
      from: 'receipt',
      name: r.bundle.name,
      createdAt: r.bundle.createdAt,
      environment: r.bundle.environment,
      registry: r.registry.host,
      parent: r.bundle.base,
    },
    naming: { host: r.registry.host, scheme: r.scheme },
    repositories,
    siteTools: new Map(r.siteTools.map((t) => [t.path, t.sha256])),
  };
}

/** A receipt from another registry than the one the bundle's values name is refused, naming both. */
export function checkSinceRegistry(held: SiteHoldings, since: string, registry: string | undefined): void {
  if (!held.base.registry || !registry || held.base.registry === registry) return;
  throw new SealiftError(
    'USAGE',
    `--since ${since}: the receipt describes registry ${held.base.registry}, but this bundle is for registry ${registry}`,
    {
      hint: `Use the receipt of a load into ${registry} (sealift load --registry ${registry} --receipt FILE), or bundle without --since for a full bundle.`,
      details: { receiptRegistry: held.base.registry, registry },
    },
  );
}

// ---------------------------------------------------------------------------------------------
// what to carry (pure)

export interface PlannedImage {
  /** the source reference, as bundle.json lists it */
  reference: string;
  /** its repository at the site */
  repository: string;
  root: Descriptor;
  /** every manifest of the graph (root included) and every config and layer */
  manifests: readonly Descriptor[];
  blobs: readonly Descriptor[];
}

export interface CarryPlan {
  /** digests the bundle carries */
  carry: Set<string>;
  /** what the images reference and the site holds (bundle.json base.absent), by digest */
  absent: AbsentEntry[];
  carriedBytes: number;
  absentBytes: number;
}

/** Mount sources for a blob: its own repository first, then up to two others. */
const MOUNT_SOURCES = 3;

/**
 * Which manifests and blobs the bundle carries. A manifest is the base's when the site holds it in
 * the image's repository, or when it holds the image's root there (same root digest, same graph);
 * a blob when any repository of the site holds it (load mounts it into the image's repository).
 */
export function planCarry(images: readonly PlannedImage[], held: Pick<SiteHoldings, 'repositories'>): CarryPlan {
  const blobHomes = new Map<string, string[]>();
  for (const [name, r] of [...held.repositories].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    for (const b of r.blobs) (blobHomes.get(b) ?? blobHomes.set(b, []).get(b)!).push(name);
  const carry = new Map<string, number>();
  const absent = new Map<string, AbsentEntry>();
  const rely = (d: Descriptor, kind: AbsentEntry['kind'], image: string, from: string[]) => {
    const a = absent.get(d.digest) ?? {
      digest: d.digest,
      size: d.size,
      mediaType: d.mediaType,
      kind,
      images: [],
      from: [],
    };
    if (!a.images.includes(image)) a.images.push(image);
    for (const f of from) if (!a.from.includes(f) && a.from.length < MOUNT_SOURCES) a.from.push(f);
    absent.set(d.digest, a);
  };
  for (const img of images) {
    const here = held.repositories.get(img.repository);
    const rootHeld = here?.manifests.has(img.root.digest) ?? false;
    for (const m of img.manifests) {
      if (rootHeld || here?.manifests.has(m.digest)) rely(m, 'manifest', img.reference, []);
      else carry.set(m.digest, m.size);
    }
    for (const b of img.blobs) {
      const homes = blobHomes.get(b.digest) ?? [];
      const from = [...(rootHeld || homes.includes(img.repository) ? [img.repository] : []), ...homes];
      if (from.length > 0) rely(b, 'blob', img.reference, [...new Set(from)]);
      else carry.set(b.digest, b.size);
    }
  }
  // carried for one image is carried for all: load pushes it from the bundle
  for (const d of carry.keys()) absent.delete(d);
  const sum = (xs: Iterable<number>) => [...xs].reduce((n, x) => n + x, 0);
  const list = [...absent.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  return {
    carry: new Set(carry.keys()),
    absent: list,
    carriedBytes: sum(carry.values()),
    absentBytes: sum(list.map((a) => a.size)),
  };
}

/**
 * Site tools: a platform's set is carried when any of its tools differs from the base's (by
 * sha256), else left out (load installs a platform's tools as one set). Removes the left-out
 * files from the work dir and returns what bundle.json lists and what the base keeps.
 */
export async function planSiteToolsSince(
  workDir: string,
  tools: SiteToolsIndex,
  held: Pick<SiteHoldings, 'siteTools'>,
): Promise<{ carried: SiteToolsIndex; unchanged: BundleBase['siteTools'] }> {
  const carried: SiteToolsIndex = { platforms: [], files: [] };
  const unchanged: BundleBase['siteTools'] = [];
  for (const platform of tools.platforms) {
    const files = tools.files.filter((f) => f.platform === platform);
    if (files.every((f) => held.siteTools.get(f.path) === f.sha256)) {
      unchanged.push(...files.map((f) => ({ path: f.path, sha256: f.sha256 })));
      for (const f of files) await rm(join(workDir, ...f.path.split('/')), { force: true });
      await rm(join(workDir, ...siteToolPath(platform, 'sealift').split('/').slice(0, -1)), {
        recursive: true,
        force: true,
      });
    } else {
      carried.platforms.push(platform);
      carried.files.push(...files);
    }
  }
  return { carried, unchanged };
}

/**
 * After the pull (which learns every graph): drops the base's manifests and blobs from the work
 * layout (unless told not to) and returns bundle.json's `base` and the digests the bundle carries.
 */
export async function applySince(
  layout: OciLayout,
  pulled: readonly {
    pull: { request: { reference: string } };
    result: Pick<CopyResult, 'root' | 'manifests' | 'blobs'>;
  }[],
  held: SiteHoldings,
  unchangedTools: BundleBase['siteTools'],
  /** false: leave them in the layout (a packed bundle walks the graphs through them, then leaves them out of the tar) */
  opts: { removeFromLayout?: boolean } = {},
): Promise<{ base: BundleBase; carry: Set<string> }> {
  const repos = siteRepositories(
    pulled.map((p) => p.pull.request.reference),
    held.naming,
  );
  const plan = planCarry(
    pulled.map((p) => ({
      reference: p.pull.request.reference,
      repository: repos.get(key(p.pull.request.reference))!,
      root: p.result.root,
      manifests: p.result.manifests,
      blobs: p.result.blobs,
    })),
    held,
  );
  if (opts.removeFromLayout !== false) for (const a of plan.absent) await layout.removeBlob(a.digest as Digest);
  return { base: { ...held.base, absent: plan.absent, siteTools: unchangedTools }, carry: plan.carry };
}
