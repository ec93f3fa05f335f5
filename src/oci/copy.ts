// One graph walk for every direction: registry -> layout (bundle), layout or tar -> registry
// (load), registry -> registry (mirror). Sources and targets are small interfaces; the walk
// copies blobs first, then child manifests, then the root, so a registry never sees a
// manifest whose blobs are missing. Blobs are deduplicated across images through a shared
// in-flight map keyed by target and digest (a blob in one repository is not in another), and
// transfers are limited by a shared p-limit (small blobs, such as configs, by a wider one: their
// cost is round trips, not bandwidth).
import { pipeline, Transform, type Readable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { SealiftError } from '../errors.ts';
import { noEvents, type EventSink, type RunOptions } from '../events.ts';
import { RetryBudget, retrying, withRetryBudget, type RetryPolicy } from './transport.ts';
import {
  descriptorOf,
  formatPlatform,
  isDigest,
  platformMatches,
  parseManifest,
  type Descriptor,
  type Digest,
  type PlatformSelection,
  type RawManifest,
} from './types.ts';

/** Where an image comes from. A tar-backed bundle reader implements the same two methods. */
export interface ImageSource {
  /** for messages, e.g. `docker.io/istio/pilot` or `bundle.tar` */
  readonly name: string;
  /** a tag, a digest, or (for children) the descriptor that points at it */
  fetchManifest(selector: string | Descriptor, signal?: AbortSignal): Promise<RawManifest>;
  /** a stream that fails unless it yields exactly the descriptor's bytes */
  fetchBlob(desc: Descriptor, opts: { signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<Readable>;
  /** optional: the raw bytes from `offset` on (unverified: the target verifies them with what it has), or undefined */
  fetchBlobFrom?(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<Readable | undefined>;
}

export interface PushManifestOptions {
  /** the root of the copy: tag it (registry) or record it in index.json (layout) */
  root: boolean;
  tag?: string;
  annotations?: Record<string, string>;
}

/** Where an image goes. Writes are idempotent and say what happened. */
export interface ImageTarget {
  /**
   * Names the target's blob store (`host/repository`, a layout directory): two targets with the
   * same name hold the same blobs, and a session copies a blob once per name.
   */
  readonly name: string;
  hasBlob(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** `open` may be called again to retry; `openFrom` (when the source can) continues a partial blob */
  pushBlob(
    desc: Descriptor,
    open: () => Promise<Readable>,
    signal?: AbortSignal,
    openFrom?: (offset: number) => Promise<Readable | undefined>,
  ): Promise<'written' | 'existed' | 'mounted'>;
  pushManifest(
    raw: Pick<RawManifest, 'bytes' | 'mediaType' | 'digest'>,
    opts: PushManifestOptions,
    signal?: AbortSignal,
  ): Promise<void>;
}

export type BlobOutcome = 'written' | 'existed' | 'mounted';

/** Shared between the copies of one run: dedupe, concurrency, totals. */
export interface CopySession {
  limit: LimitFunction;
  /** for blobs under SMALL_BLOB bytes (default: `limit`) */
  small?: LimitFunction;
  /** `<target name> <digest>` -> the copy of that blob into that target (see blobKey) */
  inflight: Map<string, Promise<BlobOutcome>>;
  /** blob digest -> size, every blob any copy of this session needed */
  blobs: Map<Digest, number>;
  bytesTransferred: number;
}

/** Below this size a blob's transfer is mostly round trips: more of them may run at once. */
export const SMALL_BLOB = 1024 * 1024;

export function createCopySession(concurrency = 4): CopySession {
  const n = Math.max(1, concurrency);
  return {
    limit: pLimit(n),
    small: pLimit(Math.max(8, 4 * n)),
    inflight: new Map(),
    blobs: new Map(),
    bytesTransferred: 0,
  };
}

/** A blob copied into one target is not thereby in another: the session dedupes per target. */
export function blobKey(target: Pick<ImageTarget, 'name'>, digest: Digest): string {
  return `${target.name} ${digest}`;
}

export interface CopyOptions extends RunOptions {
  /** what to read at the source: tag, digest, or descriptor */
  selector: string | Descriptor;
  /** the tag to give the root at the target */
  tag?: string;
  annotations?: Record<string, string>;
  /** default: all platforms (the exact upstream graph) */
  platforms?: PlatformSelection;
  session?: CopySession;
  /** label for events, e.g. the full source reference */
  ref?: string;
  /**
   * the retry policy of one blob's transfer: one budget for the transfer and every request in it
   * (transport.ts states the worst case)
   */
  retry?: Partial<RetryPolicy>;
}

export interface CopyResult {
  /** what the site resolves the tag to: upstream root, or the selected platform's manifest, or a sealift-written index */
  root: Descriptor;
  /** the root as read at the source */
  source: Descriptor;
  /** how the root was chosen */
  kind: 'exact' | 'platform' | 'reduced-index';
  platforms: string[];
  /** every blob (layers and configs) of the copied graph */
  blobs: Descriptor[];
  /** every manifest (children and root) of the copied graph */
  manifests: Descriptor[];
}

function isForeign(d: Descriptor): boolean {
  return /foreign|nondistributable/.test(d.mediaType) && (d.urls?.length ?? 0) > 0;
}

function counting(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

const PROGRESS_STEP = 8 * 1024 * 1024;

/**
 * Reports progress in steps of `step` bytes (and the rest on flush), not once per chunk: with
 * --json every event is a line on stderr, and a GB of 64 KiB chunks is a lot of lines.
 */
export function progressInSteps(
  emit: (n: number) => void,
  step = PROGRESS_STEP,
): { add: (n: number) => void; flush: () => void } {
  let pending = 0;
  return {
    add(n) {
      pending += n;
      if (pending >= step) {
        emit(pending);
        pending = 0;
      }
    },
    flush() {
      if (pending > 0) emit(pending);
      pending = 0;
    },
  };
}

/** A new index of some of an upstream index's children: written by sealift, same media type. */
export function reducedIndex(upstream: RawManifest & { kind: 'index' }, children: Descriptor[]): RawManifest {
  const doc = { schemaVersion: 2, mediaType: upstream.mediaType, manifests: children };
  const bytes = Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
  return parseManifest(bytes, { mediaType: upstream.mediaType, where: 'reduced index' });
}

export async function copyImage(source: ImageSource, target: ImageTarget, opts: CopyOptions): Promise<CopyResult> {
  const session = opts.session ?? createCopySession();
  const onEvent: EventSink = opts.onEvent ?? noEvents;
  const signal = opts.signal;
  const ref =
    opts.ref ?? `${source.name}${typeof opts.selector === 'string' ? `:${opts.selector}` : `@${opts.selector.digest}`}`;
  const selection = opts.platforms ?? { kind: 'all' };

  const blobs = new Map<Digest, Descriptor>();
  const manifests = new Map<Digest, Descriptor>();

  const copyBlob = (desc: Descriptor): Promise<BlobOutcome> => {
    blobs.set(desc.digest, desc);
    session.blobs.set(desc.digest, desc.size);
    const key = blobKey(target, desc.digest);
    const known = session.inflight.get(key);
    if (known) return known;
    const limit = desc.size < SMALL_BLOB ? (session.small ?? session.limit) : session.limit;
    const budget = new RetryBudget(opts.retry, { onEvent, ...(signal ? { signal } : {}) });
    const p = limit(() =>
      withRetryBudget(budget, async (): Promise<BlobOutcome> => {
        if (await target.hasBlob(desc, signal)) {
          onEvent({ type: 'blob:done', digest: desc.digest, size: desc.size, skipped: 'present' });
          return 'existed';
        }
        onEvent({ type: 'blob:start', digest: desc.digest, size: desc.size, ref });
        const fetchFrom = source.fetchBlobFrom?.bind(source);
        return retrying(`blob ${desc.digest} of ${ref}`, {}, async () => {
          let sent = 0;
          const progress = progressInSteps((n) => onEvent({ type: 'blob:progress', digest: desc.digest, bytes: n }));
          const onBytes = (n: number) => {
            sent += n;
            progress.add(n);
          };
          let outcome: BlobOutcome;
          try {
            outcome = await target.pushBlob(
              desc,
              () => source.fetchBlob(desc, { ...(signal ? { signal } : {}), onBytes }),
              signal,
              fetchFrom
                ? async (offset) => {
                    const rest = await fetchFrom(desc, offset, signal);
                    if (!rest) return undefined;
                    onEvent({
                      type: 'info',
                      message: `resuming ${desc.digest} of ${ref} at byte ${offset} of ${desc.size}`,
                      fields: { digest: desc.digest, offset },
                    });
                    const counted = counting(onBytes);
                    pipeline(rest, counted, () => undefined); // an error of `rest` reaches `counted`
                    return counted;
                  }
                : undefined,
            );
          } finally {
            // no negative progress: a target that keeps the partial blob continues from it
            progress.flush();
          }
          session.bytesTransferred += sent;
          onEvent({
            type: 'blob:done',
            digest: desc.digest,
            size: desc.size,
            ...(outcome === 'written' ? {} : { skipped: outcome === 'mounted' ? 'mounted' : 'exists' }),
          });
          return outcome;
        });
      }),
    );
    session.inflight.set(key, p);
    // a failed blob may be retried by a later copy in the same session
    p.catch(() => session.inflight.delete(key));
    return p;
  };

  const copyManifestTree = async (raw: RawManifest, push: PushManifestOptions): Promise<void> => {
    if (raw.kind === 'index') {
      await Promise.all(
        raw.parsed.manifests.map(async (child) => {
          const childRaw = await source.fetchManifest(child, signal);
          if (childRaw.digest !== child.digest)
            throw new SealiftError('DIGEST_MISMATCH', `${ref}: child ${child.digest} read back as ${childRaw.digest}`);
          await copyManifestTree(childRaw, { root: false });
        }),
      );
    } else {
      const parts = [raw.parsed.config, ...raw.parsed.layers].filter((d) => !isForeign(d));
      await Promise.all(parts.map((d) => copyBlob(d)));
    }
    manifests.set(raw.digest, descriptorOf(raw));
    await target.pushManifest(raw, push, signal);
  };

  const upstream = await source.fetchManifest(opts.selector, signal);
  if (typeof opts.selector === 'string' && isDigest(opts.selector) && upstream.digest !== opts.selector) {
    throw new SealiftError('DIGEST_MISMATCH', `${ref}: expected ${opts.selector}, got ${upstream.digest}`);
  }
  const rootPush: PushManifestOptions = {
    root: true,
    ...(opts.tag ? { tag: opts.tag } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };

  let root: RawManifest = upstream;
  let kind: CopyResult['kind'] = 'exact';
  let platforms: string[] = [];
  if (upstream.kind === 'index') {
    const children = upstream.parsed.manifests;
    platforms = children
      .filter((c) => c.platform && c.platform.os !== 'unknown')
      .map((c) => formatPlatform(c.platform));
    if (selection.kind === 'only') {
      const picked: Descriptor[] = [];
      for (const want of selection.platforms) {
        const match = children.find((c) => platformMatches(want, c.platform));
        if (!match) {
          throw new SealiftError(
            'NOT_FOUND',
            `${ref} has no image for platform ${formatPlatform(want)} (it has: ${platforms.join(', ') || 'none'})`,
            {
              hint: 'Choose platforms the image provides with --platform, or pin the reference by digest to keep every platform.',
              details: { reference: ref, platform: formatPlatform(want), available: platforms },
            },
          );
        }
        if (!picked.includes(match)) picked.push(match);
      }
      platforms = picked.map((c) => formatPlatform(c.platform));
      if (picked.length === 1) {
        const only = picked[0] as Descriptor;
        root = await source.fetchManifest(only, signal);
        kind = 'platform';
      } else if (picked.length < children.length) {
        // copy the children as upstream wrote them, then a new index of just those
        for (const c of picked) {
          const childRaw = await source.fetchManifest(c, signal);
          await copyManifestTree(childRaw, { root: false });
        }
        root = reducedIndex(upstream, picked);
        kind = 'reduced-index';
        manifests.set(root.digest, descriptorOf(root));
        await target.pushManifest(root, rootPush, signal);
        return finish();
      }
    }
  }
  await copyManifestTree(root, rootPush);
  return finish();

  function finish(): CopyResult {
    return {
      root: descriptorOf(root),
      source: descriptorOf(upstream),
      kind,
      platforms,
      blobs: [...blobs.values()],
      manifests: [...manifests.values()],
    };
  }
}
