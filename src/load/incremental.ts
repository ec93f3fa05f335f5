// Load of an incremental bundle (`bundle --since`): what it does not carry (bundle.json
// `base.absent`) must already be at the target. Checked before anything is pushed:
//   a manifest   HEAD in the image's target repository
//   a blob       HEAD in the image's target repository, else in a repository it can be mounted
//                from (the receipt's, or another image's of this bundle): the copy mounts it there
// Anything missing refuses the load with BASE_MISSING, listing each missing digest and the base
// bundle that has it. During the copy, an absent manifest is read back from the target (the walk
// needs its children), and an absent blob is found there or mounted: never read from the bundle.
import pLimit from 'p-limit';
import {
  absentFor,
  absentIndex,
  carriedGraph,
  type BundleIndex,
  type BundleSource,
  type ImageGraph,
} from '../bundle-format/index.ts';
import { SealiftError } from '../errors.ts';
import type { EventSink } from '../events.ts';
import type { ImageSource } from '../oci/copy.ts';
import { formatImageReference, isDigest } from '../oci/reference.ts';
import type { RegistryClient } from '../oci/registry.ts';
import type { Descriptor, Digest } from '../oci/types.ts';
import type { CopyItem } from './engine.ts';
import type { BlobHomes } from './site-target.ts';

export interface MissingFromBase {
  repository: string;
  digest: string;
  kind: 'manifest' | 'blob';
  size: number;
  images: string[];
}

/** Every item's graph: carried descriptors, and (incremental bundle) what the base carried. */
export async function imageGraphs(
  source: BundleSource,
  items: readonly CopyItem[],
  index: BundleIndex,
): Promise<Map<CopyItem, ImageGraph>> {
  const absent = absentIndex(index);
  const out = new Map<CopyItem, ImageGraph>();
  for (const item of items)
    out.set(
      item,
      await carriedGraph(source, item.selector as Descriptor, formatImageReference(item.named.source), absent),
    );
  return out;
}

/** Which repositories use which blob (mounts across repositories), mount sources of the base's blobs first. */
export function blobHomesOf(graphs: ReadonlyMap<CopyItem, ImageGraph>, mounts: ReadonlyMap<string, string>): BlobHomes {
  const homes: BlobHomes = { placed: new Map(), users: new Map() };
  const use = (digest: string, repo: string) => {
    const set = homes.users.get(digest as Digest) ?? new Set<string>();
    set.add(repo);
    homes.users.set(digest as Digest, set);
  };
  for (const [item, g] of graphs)
    for (const a of g.absent) {
      const from = mounts.get(`${item.named.target.repository} ${a.digest}`);
      if (from) use(a.digest, from);
    }
  for (const [item, g] of graphs) {
    for (const b of g.blobs) use(b.digest, item.named.target.repository);
    for (const a of g.absent) if (a.kind === 'blob') use(a.digest, item.named.target.repository);
  }
  return homes;
}

/**
 * Checks every absent manifest and blob at the target, before any push; needs bundle.json and
 * the targets only (no manifest is read), so a reader of a stream can call it first. Returns, per
 * `<repository> <digest>` of a blob not yet in its repository, the repository to mount it from.
 */
export async function checkBaseAtTarget(opts: {
  location: string;
  index: BundleIndex;
  /** the images' targets (only their naming is read) */
  items: readonly Pick<CopyItem, 'named'>[];
  client: RegistryClient;
  registry: string;
  onEvent: EventSink;
  signal?: AbortSignal;
}): Promise<Map<string, string>> {
  const mounts = new Map<string, string>();
  const base = opts.index.base;
  if (!base) return mounts;
  opts.onEvent({ type: 'phase', name: `checking the base's ${base.absent.length} manifests and blobs at the target` });
  // every repository of this bundle that references each absent digest: also a mount source
  const usersOf = new Map<string, Set<string>>();
  const needs: { repository: string; entry: ImageGraph['absent'][number]; image: string }[] = [];
  const absent = absentIndex(opts.index);
  for (const item of opts.items)
    for (const a of absentFor(absent, formatImageReference(item.named.source))) {
      const repository = item.named.target.repository;
      (usersOf.get(a.digest) ?? usersOf.set(a.digest, new Set()).get(a.digest)!).add(repository);
      if (!needs.some((n) => n.repository === repository && n.entry.digest === a.digest))
        needs.push({ repository, entry: a, image: formatImageReference(item.named.source) });
    }
  const limit = pLimit(8);
  const missing: MissingFromBase[] = [];
  await Promise.all(
    needs.map(({ repository, entry, image }) =>
      limit(async () => {
        const digest = entry.digest as Digest;
        if (entry.kind === 'manifest') {
          const have = await opts.client.manifestExists(repository, digest, opts.signal);
          if (have && (!have.digest || have.digest === digest)) return;
        } else {
          if (await opts.client.blobExists(repository, digest, opts.signal)) return;
          const candidates = [...new Set([...entry.from, ...(usersOf.get(digest) ?? [])])].filter(
            (r) => r !== repository,
          );
          for (const from of candidates) {
            if (await opts.client.blobExists(from, digest, opts.signal)) {
              mounts.set(`${repository} ${digest}`, from);
              return;
            }
          }
        }
        missing.push({ repository, digest, kind: entry.kind, size: entry.size, images: [image] });
      }),
    ),
  );
  if (missing.length > 0) throw baseMissing(opts.location, opts.index, opts.registry, missing);
  return mounts;
}

function baseMissing(location: string, index: BundleIndex, registry: string, missing: MissingFromBase[]): SealiftError {
  const base = index.base!;
  missing.sort((a, b) => (a.repository + a.digest < b.repository + b.digest ? -1 : 1));
  const shown = missing
    .slice(0, 20)
    .map((m) => `${registry}/${m.repository}@${m.digest} (${m.kind}, ${m.size} bytes, of ${m.images.join(', ')})`);
  if (missing.length > shown.length) shown.push(`... and ${missing.length - shown.length} more`);
  const baseName = `${base.name} (bundle.json sha256 ${base.identity.slice('sha256:'.length)}, made ${base.createdAt}${base.environment ? ` for ${base.environment}` : ''})`;
  const elsewhere =
    (base.parent
      ? ` It is incremental itself: what it did not carry, its base (bundle.json sha256 ${base.parent.slice('sha256:'.length)}) did.`
      : '') +
    (base.registry && base.registry !== registry ? ` It was made from a receipt of registry ${base.registry}.` : '');
  return new SealiftError(
    'BASE_MISSING',
    `${location} is an incremental bundle: ${missing.length} of the manifests and blobs it does not carry are not at ${registry} (nothing was pushed):\n  ${shown.join('\n  ')}\nThe base bundle has them: ${baseName}.${elsewhere}`,
    {
      hint: `Load the base bundle ${base.name} into ${registry} first, then this one; or make a full bundle (sealift bundle without --since).`,
      details: {
        registry,
        missing,
        base: {
          identity: base.identity,
          name: base.name,
          createdAt: base.createdAt,
          environment: base.environment,
          registry: base.registry,
          parent: base.parent ?? null,
        },
      },
    },
  );
}

/**
 * The bundle as a copy source for one target repository: an absent manifest is read back from
 * the target (checked there before the copy, verified against its digest as it is read).
 */
export function baseAwareSource(source: BundleSource, client: RegistryClient, repository: string): ImageSource {
  return {
    name: source.name,
    fetchManifest(selector, signal) {
      const digest = typeof selector === 'string' ? selector : selector.digest;
      if (isDigest(digest) && !source.has(digest)) return client.fetchManifest(repository, digest, signal);
      return source.fetchManifest(selector);
    },
    fetchBlob: (desc, o) => source.fetchBlob(desc, o.onBytes ? { onBytes: o.onBytes } : {}),
  };
}
