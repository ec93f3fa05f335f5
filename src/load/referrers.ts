// After the images: what the bundle carries that refers to them (bundle.json's `referrers` per
// image) into the same target repositories, by the distribution spec's rules (src/oci/referrers.ts):
// referrers through the site registry's API where it indexes them, else in the sha256-<hex>
// fallback index merged with what is there; cosign's tag objects under their tags.
import pLimit from 'p-limit';
import { errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import type { BundleIndex } from '../bundle-format/index.ts';
import { createCopySession, type ImageSource } from '../oci/copy.ts';
import { formatImageReference, normalizeImageReference } from '../oci/reference.ts';
import { discoverReferrers, pushReferrers, type Referrer } from '../oci/referrers.ts';
import type { RegistryClient, RegistryPool } from '../oci/registry.ts';
import { registrySource } from '../oci/stores.ts';
import type { Digest } from '../oci/types.ts';
import type { CopyItem, ImageLoad } from './engine.ts';

export interface ReferrersLoad {
  /** objects pushed (or found already there), by how the site now finds them */
  objects: number;
  viaApi: number;
  viaFallbackTag: number;
  viaTag: number;
  failures: { source: string; message: string }[];
}

/** Counts one image's pushes into the result. */
function tally(result: ReferrersLoad, pushed: readonly { via: 'tag' | 'api' | 'fallback-tag' }[]): void {
  result.objects += pushed.length;
  for (const p of pushed) {
    if (p.via === 'api') result.viaApi++;
    else if (p.via === 'fallback-tag') result.viaFallbackTag++;
    else result.viaTag++;
  }
}

function emptyResult(): ReferrersLoad {
  return { objects: 0, viaApi: 0, viaFallbackTag: 0, viaTag: 0, failures: [] };
}

/**
 * Mirror (registry to registry): what refers to each copied image at its source (its root at the
 * target and, for an index, the children it lists), pushed into its target repository.
 */
export async function mirrorReferrers(
  opts: RunOptions & {
    items: readonly CopyItem[];
    images: readonly ImageLoad[];
    pool: RegistryPool;
    target: RegistryClient;
  },
): Promise<ReferrersLoad> {
  const result = emptyResult();
  const copied = new Map(opts.images.filter((i) => i.status !== 'failed').map((i) => [i.source, i.digest as Digest]));
  const session = createCopySession(4);
  const limit = pLimit(4);
  await Promise.all(
    opts.items.map((item) =>
      limit(async () => {
        const source = formatImageReference(item.named.source);
        const root = copied.get(source);
        if (!root) return;
        try {
          const repo = item.named.target.repository;
          const raw = await opts.target.fetchManifest(repo, root, opts.signal);
          const subjects = [root, ...(raw.kind === 'index' ? raw.parsed.manifests.map((m) => m.digest) : [])];
          const from = opts.pool.client(item.named.source.registry);
          const found = await discoverReferrers(from, item.named.source.repository, subjects, opts);
          if (found.length === 0) return;
          tally(
            result,
            await pushReferrers(registrySource(from, item.named.source.repository), opts.target, repo, found, {
              session,
              ref: formatImageReference(item.named.target),
              ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
              ...(opts.signal ? { signal: opts.signal } : {}),
            }),
          );
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          result.failures.push({ source, message: errorMessage(e) });
        }
      }),
    ),
  );
  return result;
}

export async function loadReferrers(
  opts: RunOptions & {
    items: readonly CopyItem[];
    /** the images as copied: an image that failed gets none of its referrers */
    images: readonly ImageLoad[];
    index: BundleIndex;
    source: ImageSource;
    client: RegistryClient;
    concurrency?: number;
  },
): Promise<ReferrersLoad> {
  const onEvent = opts.onEvent ?? noEvents;
  const key = (ref: string) => formatImageReference(normalizeImageReference(ref));
  const carried = new Map(opts.index.images.map((i) => [key(i.reference), i.referrers ?? []]));
  const failedImages = new Set(opts.images.filter((i) => i.status === 'failed').map((i) => i.source));
  const result = emptyResult();
  const work = opts.items
    .map((item) => ({ item, source: formatImageReference(item.named.source) }))
    .map((w) => ({ ...w, referrers: carried.get(w.source) ?? [] }))
    .filter((w) => w.referrers.length > 0 && !failedImages.has(w.source));
  if (work.length === 0) return result;
  onEvent({ type: 'phase', name: 'pushing signatures, attestations and SBOMs' });
  const session = createCopySession(opts.concurrency ?? 4);
  const limit = pLimit(4);
  await Promise.all(
    work.map((w) =>
      limit(async () => {
        try {
          const pushed = await pushReferrers(
            opts.source,
            opts.client,
            w.item.named.target.repository,
            w.referrers.map((r): Referrer => ({
              subject: r.subject as Digest,
              kind: r.kind,
              ...(r.tag ? { tag: r.tag } : {}),
              descriptor: { ...r.descriptor, digest: r.descriptor.digest as Digest },
            })),
            {
              session,
              ref: formatImageReference(w.item.named.target),
              onEvent,
              ...(opts.signal ? { signal: opts.signal } : {}),
            },
          );
          tally(result, pushed);
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          const message = errorMessage(e);
          result.failures.push({ source: w.source, message });
          onEvent({ type: 'image:failed', ref: w.source, message: `signatures, attestations, SBOMs: ${message}` });
        }
      }),
    ),
  );
  return result;
}
