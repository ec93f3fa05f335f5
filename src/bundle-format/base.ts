// An incremental bundle's graphs: what its images reference is either carried (in the layout) or
// absent (bundle.json `base.absent`: the base bundle brought it to the site). One walk for every
// reader (the bundle check, load, receipts, inspect, diff, --since on a previous bundle): it reads
// the carried manifests and stops at an absent one, whose children the base's entry list names.
import { normalizeImageReference, formatImageReference } from '../oci/reference.ts';
import type { Descriptor, Digest } from '../oci/types.ts';
import type { BundleSource } from './layout.ts';
import type { AbsentEntry, BundleIndex } from './schema.ts';

/** digest -> its absent entry; empty for a full bundle */
export function absentIndex(index: Pick<BundleIndex, 'base'>): Map<string, AbsentEntry> {
  return new Map((index.base?.absent ?? []).map((a) => [a.digest, a]));
}

export interface ImageGraph {
  /** carried manifests (root and children), read from the bundle */
  manifests: Descriptor[];
  /** carried configs and layers */
  blobs: Descriptor[];
  /** what the image references that the bundle does not carry */
  absent: AbsentEntry[];
}

const imageKey = (ref: string) => {
  try {
    return formatImageReference(normalizeImageReference(ref));
  } catch {
    return ref;
  }
};

/**
 * One image's graph: carried manifests are read (and verified) from the bundle, blobs listed; an
 * absent descriptor is not descended into, and every absent entry naming this image is added.
 */
export async function carriedGraph(
  source: BundleSource,
  root: Descriptor,
  image: string,
  absent: ReadonlyMap<string, AbsentEntry>,
): Promise<ImageGraph> {
  const manifests: Descriptor[] = [];
  const blobs: Descriptor[] = [];
  const seen = new Set<string>();
  const walk = async (d: Descriptor): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (!source.has(d.digest as Digest) && absent.has(d.digest)) return;
    const raw = await source.fetchManifest(d);
    manifests.push(d);
    if (raw.kind === 'index') for (const c of raw.parsed.manifests) await walk(c);
    else
      for (const b of [raw.parsed.config, ...raw.parsed.layers]) {
        if (seen.has(b.digest)) continue;
        seen.add(b.digest);
        if (source.has(b.digest as Digest) || !absent.has(b.digest)) blobs.push(b);
      }
  };
  await walk(root);
  return { manifests, blobs, absent: absentFor(absent, image) };
}

/** The absent entries an image references: from bundle.json alone (a streaming reader has no manifests yet). */
export function absentFor(absent: ReadonlyMap<string, AbsentEntry>, image: string): AbsentEntry[] {
  const key = imageKey(image);
  return [...absent.values()].filter((a) => a.images.some((i) => imageKey(i) === key));
}
