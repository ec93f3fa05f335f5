// The copy engine load and mirror share: every image into its target repository through the one
// graph walk (copyImage), one copy session for the run (it dedupes a blob per target repository;
// across repositories blobs are mounted, site-target.ts), a failing image recorded and the rest
// carried on, then every target resolved and compared with its digest.
import pLimit from 'p-limit';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { formatImageReference } from '../oci/reference.ts';
import { copyImage, createCopySession, type ImageSource } from '../oci/copy.ts';
import type { RegistryClient, RegistryHostConfig } from '../oci/registry.ts';
import type { Descriptor, PlatformSelection } from '../oci/types.ts';
import type { ImageTarget as NamedTarget } from '../oci/naming.ts';
import { siteRegistryTarget, type BlobHomes } from './site-target.ts';

export interface SiteRegistry {
  /** host:port */
  host: string;
  plainHttp?: boolean;
  insecure?: boolean;
  caFile?: string;
}

export type ImageStatus = 'pushed' | 'present' | 'failed';

export interface ImageLoad {
  source: string;
  target: string;
  digest: string;
  status: ImageStatus;
  error?: string;
}

export type CheckStatus = 'ok' | 'missing' | 'mismatch' | 'error';

export interface TargetCheck {
  source: string;
  target: string;
  expected: string;
  found?: string;
  status: CheckStatus;
  message?: string;
}

export interface TransferStats {
  blobsPushed: number;
  blobsMounted: number;
  blobsPresent: number;
  bytesPushed: number;
}

export interface CopyEngineResult {
  images: ImageLoad[];
  checks: TargetCheck[];
  stats: TransferStats;
  /** each failed image, with the error's hint (what to do) when it had one */
  failures: { source: string; message: string; hint?: string }[];
}

export function registryHostConfig(r: SiteRegistry): RegistryHostConfig {
  return {
    ...(r.plainHttp ? { plainHttp: true } : {}),
    ...(r.insecure ? { insecureSkipVerify: true } : {}),
    ...(r.caFile ? { caFile: r.caFile } : {}),
  };
}

/** One item for the copy engine: where the image is read, where it goes, what the site must resolve. */
export interface CopyItem {
  named: NamedTarget;
  /** the root to copy (bundle: the layout's descriptor; mirror: the source reference's selector) */
  selector: string | Descriptor;
  /** the digest the site must resolve the target to, when known */
  expected?: string;
}

/**
 * Copies every item into its target repository; a failing image does not stop the others.
 * Then resolves every target and compares it with the expected digest.
 */
export async function copyAll(
  opts: {
    items: CopyItem[];
    client: RegistryClient;
    source: (item: CopyItem) => ImageSource;
    homes: BlobHomes;
    concurrency: number;
    /** default: the exact graph (every platform) */
    platforms?: PlatformSelection;
    /** for items without an expected digest: what the target must serve (e.g. the source tag's digest now) */
    resolveExpected?: ((item: CopyItem) => Promise<string>) | undefined;
    /**
     * target repositories this run already saw serving their item's expected digest (load's site
     * state, read before the push): not asked again
     */
    servedAlready?: ReadonlySet<string>;
  } & RunOptions,
): Promise<CopyEngineResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const session = createCopySession(opts.concurrency);
  const stats: TransferStats = { blobsPushed: 0, blobsMounted: 0, blobsPresent: 0, bytesPushed: 0 };
  const counting: typeof onEvent = (e) => {
    if (e.type === 'blob:done') {
      if (!e.skipped) {
        stats.blobsPushed++;
        stats.bytesPushed += e.size;
      } else if (e.skipped === 'mounted') stats.blobsMounted++;
      else stats.blobsPresent++;
    }
    onEvent(e);
  };
  onEvent({ type: 'phase', name: 'pushing', total: opts.items.length });
  const images: ImageLoad[] = [];
  const failures: CopyEngineResult['failures'] = [];
  const copied = new Map<CopyItem, string>();
  /** items the target served with the expected digest before the walk: nothing was copied, the check is done */
  const found = new Set<CopyItem>();
  // images in flight: enough that small blobs and manifests overlap the large transfers
  const perImage = pLimit(Math.max(4, 2 * opts.concurrency));
  await Promise.all(
    opts.items.map((item, index) =>
      perImage(async () => {
        const source = formatImageReference(item.named.source);
        const target = formatImageReference(item.named.target);
        const repo = item.named.target.repository;
        onEvent({ type: 'image:start', ref: source, index, total: opts.items.length });
        let moved = 0;
        const imageEvents: typeof onEvent = (e) => {
          if (e.type === 'blob:done' && (!e.skipped || e.skipped === 'mounted')) moved++;
          counting(e);
        };
        try {
          // incremental: a target that already serves the expected digest is not walked at all
          let expected = item.expected;
          if (!expected && opts.resolveExpected) expected = await opts.resolveExpected(item);
          if (expected) {
            const t = item.named.target;
            const have = opts.servedAlready?.has(repo)
              ? { digest: expected }
              : await opts.client.manifestExists(repo, t.tag ?? expected, opts.signal);
            if (have?.digest === expected) {
              copied.set(item, expected);
              found.add(item);
              images.push({ source, target, digest: expected, status: 'present' });
              onEvent({ type: 'image:done', ref: source, digest: expected, skipped: true });
              return;
            }
          }
          const r = await copyImage(opts.source(item), siteRegistryTarget(opts.client, repo, opts.homes), {
            selector: item.selector,
            ...(item.named.target.tag ? { tag: item.named.target.tag } : {}),
            session,
            ref: source,
            onEvent: imageEvents,
            ...(opts.platforms ? { platforms: opts.platforms } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          copied.set(item, r.root.digest);
          // the pre-check found the target missing or different, so the walk wrote at least its root manifest
          const status: ImageStatus = expected || moved > 0 ? 'pushed' : 'present';
          images.push({ source, target, digest: r.root.digest, status });
          onEvent({
            type: 'image:done',
            ref: source,
            digest: r.root.digest,
            ...(status === 'present' ? { skipped: true } : {}),
          });
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          const message = errorMessage(e);
          images.push({ source, target, digest: item.expected ?? '', status: 'failed', error: message });
          failures.push({ source, message, ...(e instanceof SealiftError && e.hint ? { hint: e.hint } : {}) });
          onEvent({ type: 'image:failed', ref: source, message });
        }
      }),
    ),
  );
  const order = new Map(opts.items.map((it, i) => [formatImageReference(it.named.source), i]));
  images.sort((a, b) => (order.get(a.source) ?? 0) - (order.get(b.source) ?? 0));
  // a target found serving its digest in this run is not resolved a second time: nothing was written to it
  const toResolve = opts.items.filter((it) => !found.has(it));
  const resolved = await checkTargets(
    opts.client,
    toResolve.map((it) => {
      const expected = it.expected ?? copied.get(it);
      return expected ? { ...it, expected } : it;
    }),
    opts.signal,
  );
  const byItem = new Map(toResolve.map((it, i) => [it, resolved[i]!]));
  const checks = opts.items.map(
    (it): TargetCheck =>
      byItem.get(it) ?? {
        source: formatImageReference(it.named.source),
        target: formatImageReference(it.named.target),
        expected: copied.get(it)!,
        found: copied.get(it)!,
        status: 'ok',
      },
  );
  return { images, checks, stats, failures };
}

/** Resolves every target at the site and compares it with the digest the site must serve. */
export async function checkTargets(
  client: RegistryClient,
  items: CopyItem[],
  signal?: AbortSignal,
): Promise<TargetCheck[]> {
  const limit = pLimit(8);
  return Promise.all(
    items.map((item) =>
      limit(async (): Promise<TargetCheck> => {
        const source = formatImageReference(item.named.source);
        const target = formatImageReference(item.named.target);
        const expected = item.expected ?? item.named.source.digest ?? '';
        const t = item.named.target;
        try {
          const d = await client.resolve({ repository: t.repository, selector: t.tag ?? t.digest ?? 'latest' }, signal);
          const status: CheckStatus = expected && d.digest !== expected ? 'mismatch' : 'ok';
          // a reference with tag and digest must serve that digest under the tag
          return { source, target, expected, found: d.digest, status };
        } catch (e) {
          const code = e instanceof SealiftError ? e.code : '';
          return {
            source,
            target,
            expected,
            status: code === 'NOT_FOUND' ? 'missing' : 'error',
            message: errorMessage(e),
          };
        }
      }),
    ),
  );
}
