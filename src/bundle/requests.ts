// What to bundle: image references from an image lock (imagelists/<env>.lock.json) or a plain
// list (one reference a line, `#` comments), and the pure plan of how each is pulled.
import { lockEntries, readImageList, type ImageListEntry } from '../images/list.ts';
import type { ImageLock } from '../images/lock.ts';
import { formatImageReference, withDefaultTag, type ImageReference } from '../oci/reference.ts';
import type { Digest, PlatformSelection } from '../oci/types.ts';

export interface ImageRequest {
  /** canonical normalized reference: docker.io/istio/pilot:1.23.2 */
  reference: string;
  ref: ImageReference;
  releases: string[];
  /** a digest the lock already resolved the tag to: fetched by digest, still reduced like a tag */
  lockDigest?: Digest;
  /** file:line (list) or file: images[i] (lock) */
  where: string;
}

/** Reads `--imagelist FILE`: a `.json` image lock or a text list (src/images/list.ts). */
export async function readImageRequests(file: string): Promise<{ requests: ImageRequest[]; lock?: ImageLock }> {
  const list = await readImageList(file);
  return { requests: toRequests(list.entries), ...(list.lock ? { lock: list.lock } : {}) };
}

export function requestsFromLock(lock: ImageLock, file: string): ImageRequest[] {
  return toRequests(lockEntries(lock, file));
}

/** Bundle pulls the default tag of an untagged reference; a lock's digest is fetched, a pin keeps its graph. */
function toRequests(entries: readonly ImageListEntry[]): ImageRequest[] {
  return dedupe(
    entries.map((e) => {
      const ref = withDefaultTag(e.ref);
      return {
        reference: formatImageReference(ref),
        ref,
        releases: e.releases,
        ...(e.digest && !ref.digest ? { lockDigest: e.digest } : {}),
        where: e.where,
      };
    }),
  );
}

function dedupe(list: ImageRequest[]): ImageRequest[] {
  const by = new Map<string, ImageRequest>();
  for (const r of list) {
    const seen = by.get(r.reference);
    if (seen) seen.releases = [...new Set([...seen.releases, ...r.releases])].sort();
    else by.set(r.reference, { ...r, releases: [...new Set(r.releases)].sort() });
  }
  return [...by.values()];
}

export interface ImagePull {
  request: ImageRequest;
  registry: string;
  repository: string;
  /** what to ask the registry for: the pinned digest, the lock's digest, or the tag */
  selector: string;
  /** the tag recorded as org.opencontainers.image.ref.name */
  tag?: string;
  /** digest-pinned references keep the exact upstream graph, every platform */
  platforms: PlatformSelection;
}

/** Pure: how each request is pulled, by the platform rules of `sealift bundle`. */
export function planImagePulls(requests: readonly ImageRequest[], selection: PlatformSelection): ImagePull[] {
  return requests.map((request) => {
    const { ref } = request;
    const pinned = ref.digest !== undefined;
    return {
      request,
      registry: ref.registry,
      repository: ref.repository,
      selector: ref.digest ?? request.lockDigest ?? ref.tag ?? 'latest',
      ...(ref.tag ? { tag: ref.tag } : {}),
      platforms: pinned ? { kind: 'all' } : selection,
    };
  });
}
