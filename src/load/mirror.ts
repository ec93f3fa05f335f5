// `sealift mirror`: registry to registry with the same engine and naming as load, for scheduled
// jobs. Incremental: an image whose target already serves the expected digest is not walked at
// all, and within a walk every blob the target has is skipped (HEAD).
import { noEvents, type RunOptions } from '../events.ts';
import { readImageList } from '../images/list.ts';
import { planTargets, type NamingScheme } from '../oci/naming.ts';
import { isDigest, manifestSelector, normalizeImageReference } from '../oci/reference.ts';
import type { CredentialLookup } from '../oci/credentials.ts';
import { RegistryPool, type RegistryHostConfig } from '../oci/registry.ts';
import { registrySource } from '../oci/stores.ts';
import type { PlatformSelection } from '../oci/types.ts';
import { copyAll, registryHostConfig, type CopyEngineResult, type CopyItem, type SiteRegistry } from './engine.ts';
import { createBlobHomes } from './site-target.ts';

export interface MirrorEntry {
  reference: string;
  /** the digest the target must serve, when known (a lock entry, or a pinned reference) */
  digest?: string;
}

export interface MirrorOptions extends RunOptions {
  images: MirrorEntry[];
  /** where they come from, for messages: the lock or list file */
  from: string;
  to: SiteRegistry;
  /** per source host: plain HTTP, CA, mirrors */
  sources?: Record<string, RegistryHostConfig>;
  scheme?: NamingScheme;
  concurrency?: number;
  /** default: every platform (the exact upstream graph) */
  platforms?: PlatformSelection;
  credentials?: CredentialLookup;
}

export interface MirrorResult extends CopyEngineResult {
  ok: boolean;
  from: string;
  registry: string;
  scheme: NamingScheme;
}

/** What to mirror from `--imagelist FILE` (a text list or an image lock, src/images/list.ts). */
export async function readMirrorList(file: string): Promise<MirrorEntry[]> {
  const { entries } = await readImageList(file);
  return entries.map((e) => ({ reference: e.reference, ...(e.digest ? { digest: e.digest } : {}) }));
}

export async function mirrorImages(opts: MirrorOptions): Promise<MirrorResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const scheme = opts.scheme ?? 'host-swap';
  const named = planTargets(
    opts.images.map((i) => i.reference),
    opts.to.host,
    scheme,
  );
  const pool = new RegistryPool({
    hosts: { ...opts.sources, [opts.to.host]: registryHostConfig(opts.to) },
    onEvent,
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  });
  const digestOf = new Map(opts.images.map((i) => [normalizeImageReference(i.reference).original, i.digest]));
  const items: CopyItem[] = named.map((n) => {
    const expected = digestOf.get(n.source.original) ?? n.source.digest;
    return { named: n, selector: manifestSelector(n.source), ...(expected && isDigest(expected) ? { expected } : {}) };
  });
  const target = pool.client(opts.to.host);
  await target.ping(opts.signal);
  const engine = await copyAll({
    items,
    client: target,
    source: (item) => registrySource(pool.client(item.named.source.registry), item.named.source.repository),
    homes: createBlobHomes(),
    concurrency: opts.concurrency ?? 4,
    ...(opts.platforms ? { platforms: opts.platforms } : {}),
    // a tag with no known digest: what the source serves now is what the target must serve
    resolveExpected:
      opts.platforms && opts.platforms.kind === 'only'
        ? undefined
        : async (item) =>
            (await pool.client(item.named.source.registry).resolve(item.named.source, opts.signal)).digest,
    onEvent,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const ok = engine.failures.length === 0 && engine.checks.every((c) => c.status === 'ok');
  return { ok, from: opts.from, registry: opts.to.host, scheme, ...engine };
}
