// Images into the bundle's OCI layout: one copy walk per image (registry -> layout), all sharing
// one session so a blob used by many images is fetched and stored once. A failed image fails the
// run (no bundle is packed); what was stored stays for the re-run.
import pLimit from 'p-limit';
import { diskFullCause, diskFullError } from '../disk.ts';
import { SealiftError, isSealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { copyImage, createCopySession, type CopyResult, type ImageSource, type ImageTarget } from '../oci/copy.ts';
import { ANNOTATION_SOURCE, type OciLayout } from '../oci/layout.ts';
import { RegistryPool, type RegistryOptions } from '../oci/registry.ts';
import { layoutSource, layoutTarget, registrySource } from '../oci/stores.ts';
import type { EventSink } from '../events.ts';
import type { ImagePull } from './requests.ts';

export interface PulledImage {
  pull: ImagePull;
  result: CopyResult;
}

export interface PullOptions extends RunOptions {
  layout: OciLayout;
  registry: RegistryOptions;
  /** parallel blob transfers (default 4) */
  concurrency?: number;
  /**
   * how: 'layout' copies images into the layout (default); 'manifests' copies only their
   * manifests into it (every blob counts as present: a plan of what the bundle holds, with
   * sizes); 'blobs' copies the blobs of images already planned into `target`, reading the
   * manifests from the layout
   */
  mode?: 'layout' | 'manifests' | 'blobs';
  /** where blobs go in mode 'blobs' */
  target?: ImageTarget;
  /** the directory a full disk is reported for (default: the layout's) */
  diskDir?: string;
}

export interface PullSummary {
  images: PulledImage[];
  /** unique blobs (layers and configs) over all images, digest -> size */
  blobs: Map<string, number>;
  bytesTransferred: number;
}

/** A failure of the network or of a registry that keeps failing (5xx, 429), not of the reference. */
function isNetworkFault(e: unknown): boolean {
  return isSealiftError(e) && (e.code === 'NETWORK_ERROR' || e.details?.temporary === true);
}

function describeFailure(pull: ImagePull, e: unknown): string {
  const releases = pull.request.releases.length
    ? ` (needed by release${pull.request.releases.length > 1 ? 's' : ''} ${pull.request.releases.join(', ')})`
    : '';
  return `${pull.request.reference}${releases}: ${errorMessage(e)}`;
}

/** A plan's events: what it decided, not a transfer per blob (the transfers come after). */
function planEvents(onEvent: EventSink): EventSink {
  return (e) => {
    if (e.type.startsWith('blob:') || e.type === 'image:start' || e.type === 'image:done') return;
    onEvent(e);
  };
}

/**
 * Copies the images the pulls name: into the layout, or (modes, see PullOptions) their
 * manifests first and their blobs later into another target.
 */
export async function pullImages(pulls: readonly ImagePull[], opts: PullOptions): Promise<PullSummary> {
  const onEvent = opts.mode === 'manifests' ? planEvents(opts.onEvent ?? noEvents) : (opts.onEvent ?? noEvents);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const session = createCopySession(concurrency);
  const pool = new RegistryPool({ ...opts.registry, onEvent });
  const mode = opts.mode ?? 'layout';
  // a plan reads only manifests (small requests, mostly round trips): more images at once
  const imageLimit = pLimit(mode === 'manifests' ? Math.max(8, 4 * concurrency) : Math.min(concurrency, 4));
  const intoLayout = layoutTarget(opts.layout);
  let target: ImageTarget = intoLayout;
  if (mode === 'manifests') target = { ...intoLayout, hasBlob: async () => true };
  if (mode === 'blobs') {
    if (!opts.target) throw new SealiftError('INTERNAL', "pullImages mode 'blobs' needs a target");
    target = opts.target;
  }
  const fromLayout = layoutSource(opts.layout);
  const sourceFor = (pull: ImagePull): ImageSource => {
    const upstream = registrySource(pool.client(pull.registry), pull.repository);
    // the planned graph, from the manifests the plan stored: blobs alone come from the registry
    return mode === 'blobs' ? { ...upstream, fetchManifest: fromLayout.fetchManifest } : upstream;
  };
  const done: PulledImage[] = [];
  const failed: { pull: ImagePull; error: unknown }[] = [];
  onEvent({
    type: 'phase',
    name: opts.mode === 'manifests' ? 'reading image manifests' : 'pulling images',
    total: pulls.length,
  });
  await Promise.all(
    pulls.map((pull, index) =>
      imageLimit(async () => {
        if (opts.signal?.aborted) return;
        onEvent({ type: 'image:start', ref: pull.request.reference, index, total: pulls.length });
        try {
          const result = await copyImage(sourceFor(pull), target, {
            selector: pull.selector,
            ...(pull.tag ? { tag: pull.tag } : {}),
            annotations: { [ANNOTATION_SOURCE]: pull.request.reference },
            platforms: pull.platforms,
            session,
            ref: pull.request.reference,
            onEvent,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          done.push({ pull, result });
          onEvent({ type: 'image:done', ref: pull.request.reference, digest: result.root.digest });
        } catch (e) {
          failed.push({ pull, error: e });
          onEvent({ type: 'image:failed', ref: pull.request.reference, message: describeFailure(pull, e) });
        }
      }),
    ),
  );
  opts.signal?.throwIfAborted();
  // a full disk is no fault of the references: say so, for the layout's directory
  const full = failed.map((f) => diskFullCause(f.error)).find(Boolean);
  if (full)
    throw await diskFullError(opts.diskDir ?? opts.layout.dir, `pulling ${failed.length} of ${pulls.length} images`, {
      cause: full,
    });
  if (failed.length === 1) {
    const { pull, error } = failed[0]!;
    const code = isSealiftError(error) ? error.code : 'REGISTRY_ERROR';
    // a network fault says nothing about the reference: no advice to change it
    const fault = isNetworkFault(error);
    throw new SealiftError(code, `${describeFailure(pull, error)}; no bundle was written`, {
      cause: error,
      hint: fault
        ? `${isSealiftError(error) && error.hint ? `${error.hint} ` : ''}The reference is not at fault (a network fault); a re-run keeps what was already fetched.`
        : `${isSealiftError(error) && error.hint ? `${error.hint} ` : ''}Fix or exclude the reference${pull.request.where ? ` (${pull.request.where})` : ''}; a re-run keeps what was already fetched.`,
      details: { reference: pull.request.reference, releases: pull.request.releases },
    });
  }
  if (failed.length > 1) {
    throw new SealiftError(
      'PARTIAL_FAILURE',
      `${failed.length} of ${pulls.length} images failed; no bundle was written:\n  ${failed.map((f) => describeFailure(f.pull, f.error)).join('\n  ')}`,
      {
        // the failures' own hints first, each once (ten images behind one plain-HTTP host say the same)
        hint: `${[...new Set(failed.flatMap((f) => (isSealiftError(f.error) && f.error.hint ? [f.error.hint] : [])))].map((h) => `${h} `).join('')}${
          failed.every((f) => isNetworkFault(f.error))
            ? 'Network faults, not the references: run again; a re-run keeps what was already fetched.'
            : 'Fix or exclude those references and run again; a re-run keeps what was already fetched.'
        }`,
        details: {
          failed: failed.map((f) => ({
            reference: f.pull.request.reference,
            releases: f.pull.request.releases,
            error: isSealiftError(f.error) ? f.error.toJSON() : errorMessage(f.error),
          })),
        },
      },
    );
  }
  // keep the plan's order
  const order = new Map(pulls.map((p, i) => [p, i]));
  done.sort((a, b) => (order.get(a.pull) ?? 0) - (order.get(b.pull) ?? 0));
  return { images: done, blobs: new Map([...session.blobs]), bytesTransferred: session.bytesTransferred };
}
