// What refers to an image: OCI 1.1 referrers (manifests whose `subject` is the image, listed by
// the registry's referrers API or, where a registry has none, by the `sha256-<hex>` fallback tag
// index the distribution spec describes) and cosign's tag-based objects (`sha256-<hex>.sig`,
// `.att`, `.sbom`: manifests without a subject, found by tag alone).
//
// Found at a source (discoverReferrers), carried like any graph (copyReferrers), and pushed at a
// target (pushReferrers): a referrer through the referrers API where the target indexes it (its
// PUT answers with OCI-Subject), else by merging its descriptor into the fallback index tag; a
// cosign object under its tag. Every object travels byte for byte: its digest is what cosign
// verify and cosign tree read at the site.
import { SealiftError, isSealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { copyImage, type CopySession, type ImageSource, type ImageTarget } from './copy.ts';
import type { RegistryClient } from './registry.ts';
import { registryTarget } from './stores.ts';
import {
  MediaTypes,
  isManifestMediaType,
  parseManifest,
  type Descriptor,
  type Digest,
  type RawManifest,
} from './types.ts';

/** cosign's tag-based objects: signatures, attestations, attached SBOMs. */
export const COSIGN_TAG_SUFFIXES = ['sig', 'att', 'sbom'] as const;
export type CosignTagSuffix = (typeof COSIGN_TAG_SUFFIXES)[number];

/** The simple-signing payload layer of a cosign signature, and the annotation holding the signature. */
export const COSIGN_SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** artifactType of a cosign signature pushed as an OCI 1.1 referrer */
export const COSIGN_SIGNATURE_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';

/** One object that refers to a manifest of an image. */
export interface Referrer {
  /** the manifest it refers to (the image's root, or a child of an index) */
  subject: Digest;
  /** `subject`: an OCI 1.1 referrer (its manifest names the subject); `tag`: a cosign tag object */
  kind: 'subject' | 'tag';
  /** for `tag`: `sha256-<hex>.sig` and the like */
  tag?: string;
  /** mediaType, digest, size; for `subject` also artifactType and annotations (as the referrers API lists them) */
  descriptor: Descriptor;
}

/** `sha256-<hex>`: the fallback tag of the referrers of `digest`. */
export function fallbackTag(digest: Digest): string {
  return digest.replace(':', '-');
}

/** `sha256-<hex>.sig` and the like: where cosign keeps its tag-based objects for `digest`. */
export function cosignTag(digest: Digest, suffix: CosignTagSuffix): string {
  return `${fallbackTag(digest)}.${suffix}`;
}

/**
 * A manifest by tag, or undefined when the repository has no such tag. HEAD first: most images
 * have none of these tags, and a registry that counts pulls (Docker Hub) counts GETs, not HEADs.
 */
async function fetchTag(
  client: RegistryClient,
  repo: string,
  tag: string,
  signal?: AbortSignal,
): Promise<RawManifest | undefined> {
  let found;
  try {
    found = await client.resolve({ repository: repo, selector: tag }, signal);
  } catch (e) {
    if (isSealiftError(e) && e.code === 'NOT_FOUND') return undefined;
    throw e;
  }
  return client.fetchManifest(repo, found.digest, signal);
}

/** Does the repository still hold this manifest (HEAD by digest)? */
async function manifestThere(
  client: RegistryClient,
  repo: string,
  digest: Digest,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    await client.resolve({ repository: repo, selector: digest }, signal);
    return true;
  } catch (e) {
    if (isSealiftError(e) && e.code === 'NOT_FOUND') return false;
    throw e;
  }
}

/** The descriptor a referrers list holds for a manifest (distribution spec: artifactType, else config's mediaType; its annotations). */
export function referrerDescriptor(raw: RawManifest): Descriptor {
  const doc = JSON.parse(Buffer.from(raw.bytes).toString('utf8')) as {
    artifactType?: string;
    config?: { mediaType?: string };
    annotations?: Record<string, string>;
  };
  const artifactType = doc.artifactType ?? doc.config?.mediaType;
  return {
    mediaType: raw.mediaType,
    digest: raw.digest,
    size: raw.bytes.byteLength,
    ...(artifactType ? { artifactType } : {}),
    ...(doc.annotations ? { annotations: doc.annotations } : {}),
  };
}

/** The digest a manifest's `subject` names, if it has one. */
function subjectOf(raw: RawManifest): string | undefined {
  const doc = JSON.parse(Buffer.from(raw.bytes).toString('utf8')) as { subject?: { digest?: unknown } };
  return typeof doc.subject?.digest === 'string' ? doc.subject.digest : undefined;
}

/**
 * Everything that refers to `subjects` in `repo`: what the referrers API lists and what the
 * `sha256-<hex>` fallback index lists (a registry without the API answers 404 to the first), and
 * cosign's tag objects. Entries of a kind sealift cannot carry (not an OCI or Docker manifest or
 * index), and entries whose manifest is gone, are reported and left out.
 */
export async function discoverReferrers(
  client: RegistryClient,
  repo: string,
  subjects: readonly Digest[],
  opts: RunOptions = {},
): Promise<Referrer[]> {
  const onEvent = opts.onEvent ?? noEvents;
  const out: Referrer[] = [];
  const seen = new Set<string>();
  const fresh = (r: Referrer) => {
    const key = `${r.subject} ${r.kind} ${r.tag ?? ''} ${r.descriptor.digest}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  };
  for (const subject of new Set(subjects)) {
    // the API where the registry has it, and the fallback index too: a registry may have gained
    // the API after clients without it pushed referrers, which then only the tag lists
    const [api, fallback, ...tagged] = await Promise.all([
      client.fetchReferrers(repo, subject, opts.signal),
      fetchTag(client, repo, fallbackTag(subject), opts.signal),
      ...COSIGN_TAG_SUFFIXES.map((suffix) => fetchTag(client, repo, cosignTag(subject, suffix), opts.signal)),
    ]);
    const listed = [...(api ?? []), ...(fallback?.kind === 'index' ? fallback.parsed.manifests : [])];
    for (const d of listed) {
      const r: Referrer = { subject, kind: 'subject', descriptor: d };
      if (!fresh(r)) continue;
      if (!isManifestMediaType(d.mediaType)) {
        onEvent({
          type: 'warn',
          message: `${client.host}/${repo}: referrer ${d.digest} of ${subject} is a ${d.mediaType}, which sealift does not carry`,
        });
        continue;
      }
      // a fallback index keeps listing a referrer deleted since (nothing prunes it)
      if (!(await manifestThere(client, repo, d.digest, opts.signal))) {
        onEvent({
          type: 'warn',
          message: `${client.host}/${repo}: the referrers of ${subject} list ${d.digest}, which is gone; left out`,
        });
        continue;
      }
      out.push(r);
    }
    COSIGN_TAG_SUFFIXES.forEach((suffix, i) => {
      const raw = tagged[i];
      if (!raw) return;
      const r: Referrer = {
        subject,
        kind: 'tag',
        tag: cosignTag(subject, suffix),
        descriptor: { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.byteLength },
      };
      if (fresh(r)) out.push(r);
    });
  }
  return out;
}

/** A target that stores a graph but records no root (the layout's index.json lists images only). */
function graphOnly(target: ImageTarget): ImageTarget {
  return {
    name: target.name,
    hasBlob: (d, s) => target.hasBlob(d, s),
    pushBlob: (d, open, s, from) => target.pushBlob(d, open, s, from),
    pushManifest: (raw, _o, s) => target.pushManifest(raw, { root: false }, s),
  };
}

/** Copies each referrer's graph (its manifest, config and layers) into `target` without recording a root. */
export async function copyReferrers(
  source: ImageSource,
  target: ImageTarget,
  referrers: readonly Referrer[],
  opts: RunOptions & { session?: CopySession; ref?: string } = {},
): Promise<Descriptor[]> {
  const stored: Descriptor[] = [];
  for (const r of referrers) {
    const result = await copyImage(source, graphOnly(target), {
      selector: r.descriptor,
      ...(opts.session ? { session: opts.session } : {}),
      ref: `${opts.ref ?? source.name} ${r.tag ?? `referrer ${r.descriptor.digest}`}`,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    stored.push(...result.manifests, ...result.blobs);
  }
  return stored;
}

export interface ReferrerPush {
  subject: Digest;
  digest: Digest;
  /** `tag`: under its cosign tag; `api`: the registry indexed it; `fallback-tag`: listed in the sha256-<hex> index */
  via: 'tag' | 'api' | 'fallback-tag';
  tag?: string;
}

/**
 * Pushes referrers of one repository's image into `repo` at `client`: each graph's blobs first,
 * then its manifest: a cosign object under its tag; an OCI 1.1 referrer by digest, and where the
 * registry did not answer OCI-Subject, into the fallback index `sha256-<hex>` of its subject,
 * merged with what that index already lists (once per subject: no two writers of one tag).
 */
export async function pushReferrers(
  source: ImageSource,
  client: RegistryClient,
  repo: string,
  referrers: readonly Referrer[],
  opts: RunOptions & { session?: CopySession; ref?: string } = {},
): Promise<ReferrerPush[]> {
  const pushed: ReferrerPush[] = [];
  const target = registryTarget(client, repo);
  const bySubject = new Map<Digest, Descriptor[]>();
  for (const r of referrers) {
    const ref = `${opts.ref ?? `${client.host}/${repo}`} ${r.tag ?? `referrer ${r.descriptor.digest}`}`;
    const common = {
      ...(opts.session ? { session: opts.session } : {}),
      ref,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    if (r.kind === 'tag') {
      if (!r.tag) throw new SealiftError('INTERNAL', `${ref}: a tag referrer without a tag`);
      await copyImage(source, target, { selector: r.descriptor, tag: r.tag, ...common });
      pushed.push({ subject: r.subject, digest: r.descriptor.digest, via: 'tag', tag: r.tag });
      continue;
    }
    let indexed = false;
    let descriptor: Descriptor = r.descriptor;
    await copyImage(
      source,
      {
        ...graphOnly(target),
        async pushManifest(raw, o, signal) {
          if (!o.root) return target.pushManifest(raw, o, signal);
          const full = parseManifest(raw.bytes, { mediaType: raw.mediaType, expected: raw.digest, where: ref });
          if (subjectOf(full) !== r.subject)
            throw new SealiftError(
              'BUNDLE_INVALID',
              `${ref}: its manifest names the subject ${subjectOf(full) ?? '(none)'}, not ${r.subject}`,
            );
          descriptor = referrerDescriptor(full);
          indexed = (await client.pushReferrer(repo, raw, signal)).indexed;
        },
      },
      { selector: r.descriptor, ...common },
    );
    if (indexed) pushed.push({ subject: r.subject, digest: r.descriptor.digest, via: 'api' });
    else {
      const list = bySubject.get(r.subject) ?? [];
      list.push(descriptor);
      bySubject.set(r.subject, list);
    }
  }
  for (const [subject, descriptors] of bySubject) {
    await mergeFallbackIndex(client, repo, subject, descriptors, opts.signal);
    for (const d of descriptors)
      pushed.push({ subject, digest: d.digest, via: 'fallback-tag', tag: fallbackTag(subject) });
  }
  return pushed;
}

/** Adds descriptors to the `sha256-<hex>` index of `subject` (created when missing), keeping every entry it had. */
export async function mergeFallbackIndex(
  client: RegistryClient,
  repo: string,
  subject: Digest,
  descriptors: readonly Descriptor[],
  signal?: AbortSignal,
): Promise<void> {
  const tag = fallbackTag(subject);
  const existing = await fetchTag(client, repo, tag, signal);
  if (existing && existing.kind !== 'index')
    throw new SealiftError(
      'REGISTRY_ERROR',
      `${client.host}/${repo}:${tag} is an image manifest, not the referrers index of ${subject} that the tag schema reserves it for`,
      { hint: `Remove or rename the tag ${tag} in ${client.host}/${repo} and load again.` },
    );
  const have = existing?.kind === 'index' ? existing.parsed.manifests : [];
  const missing = descriptors.filter((d) => !have.some((h) => h.digest === d.digest));
  if (existing && missing.length === 0) return;
  const doc = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [...have, ...missing] };
  const bytes = Buffer.from(JSON.stringify(doc));
  await client.pushManifest(repo, tag, bytes, MediaTypes.ociIndex, signal);
}
