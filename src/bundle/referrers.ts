// What refers to each pulled image (signatures, attestations, SBOMs: src/oci/referrers.ts), found
// at its source and stored in the bundle's layout beside it, for the manifests the bundle keeps:
// an image pulled whole keeps the referrers of its index and of every child; a platform-reduced
// one those of the children it keeps (the index sealift writes for several of them has none).
import pLimit from 'p-limit';
import { SealiftError, errorMessage, isSealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import type { BundleReferrer } from '../bundle-format/index.ts';
import { createCopySession } from '../oci/copy.ts';
import { layoutTarget, registrySource } from '../oci/stores.ts';
import type { OciLayout } from '../oci/layout.ts';
import { copyReferrers, discoverReferrers } from '../oci/referrers.ts';
import { RegistryPool, type RegistryOptions } from '../oci/registry.ts';
import type { Digest } from '../oci/types.ts';
import type { PulledImage } from './pull.ts';

export interface PulledReferrers {
  /** source reference -> what refers to it */
  byImage: Map<string, BundleReferrer[]>;
  /** every manifest and blob digest the referrers' graphs hold (kept by the layout's pruning) */
  digests: Set<string>;
}

export async function pullReferrers(
  images: readonly PulledImage[],
  opts: RunOptions & { layout: OciLayout; registry: RegistryOptions; concurrency?: number },
): Promise<PulledReferrers> {
  const onEvent = opts.onEvent ?? noEvents;
  const pool = new RegistryPool({ ...opts.registry, onEvent });
  const session = createCopySession(opts.concurrency ?? 4);
  const target = layoutTarget(opts.layout);
  const byImage = new Map<string, BundleReferrer[]>();
  const digests = new Set<string>();
  const failed: { reference: string; error: unknown }[] = [];
  // small lookups, most of them answered 404: more images at once than blob transfers
  const limit = pLimit(Math.max(8, 4 * (opts.concurrency ?? 4)));
  onEvent({ type: 'phase', name: 'pulling signatures, attestations and SBOMs' });
  await Promise.all(
    images.map(({ pull, result }) =>
      limit(async () => {
        const reference = pull.request.reference;
        try {
          const client = pool.client(pull.registry);
          const subjects = result.manifests
            .map((m) => m.digest)
            .filter((d) => result.kind !== 'reduced-index' || d !== result.root.digest) as Digest[];
          const found = await discoverReferrers(client, pull.repository, subjects, opts);
          const stored = await copyReferrers(registrySource(client, pull.repository), target, found, {
            session,
            ref: reference,
            onEvent,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          for (const d of stored) digests.add(d.digest);
          byImage.set(
            reference,
            found.map((r) => ({
              subject: r.subject,
              kind: r.kind,
              ...(r.tag ? { tag: r.tag } : {}),
              descriptor: r.descriptor,
            })),
          );
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          failed.push({ reference, error: e });
        }
      }),
    ),
  );
  opts.signal?.throwIfAborted();
  if (failed.length > 0) {
    const first = failed[0]!;
    throw new SealiftError(
      failed.length === 1 && isSealiftError(first.error) ? first.error.code : 'PARTIAL_FAILURE',
      `the signatures, attestations and SBOMs of ${failed.length} image${failed.length === 1 ? '' : 's'} could not be read; no bundle was written:\n  ${failed.map((f) => `${f.reference}: ${errorMessage(f.error)}`).join('\n  ')}`,
      {
        cause: first.error,
        hint: 'Run again (a re-run keeps what was fetched), or bundle with --no-referrers to leave them out (a site that checks signatures will then find none).',
        details: { failed: failed.map((f) => ({ reference: f.reference, error: errorMessage(f.error) })) },
      },
    );
  }
  const objects = [...byImage.values()].reduce((n, r) => n + r.length, 0);
  const signed = [...byImage.values()].filter((r) => r.length > 0).length;
  onEvent({
    type: 'info',
    message: `signatures, attestations, SBOMs: ${objects} carried for ${signed} of ${images.length} images`,
    fields: { referrers: objects, images: signed },
  });
  return { byImage, digests };
}
