// `sealift mirror`: registry to registry with the same engine and naming as load, for scheduled
// jobs. Incremental: an image whose target already serves the expected digest is not walked at
// all, and within a walk every blob the target has is skipped (HEAD).
// Digest-exact: an entry with a known digest (a lock, or a pinned reference) is copied by that
// digest and tagged at the target; an upstream tag that has moved since the lock is reported,
// never copied over the locked image.
import pLimit from 'p-limit';
import { errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { readImageList } from '../images/list.ts';
import { planTargets, type NamingScheme } from '../oci/naming.ts';
import {
  formatImageReference,
  isDigest,
  manifestSelector,
  normalizeImageReference,
  repositoryName,
} from '../oci/reference.ts';
import type { CredentialLookup } from '../oci/credentials.ts';
import { RegistryPool, type RegistryHostConfig } from '../oci/registry.ts';
import { registrySource } from '../oci/stores.ts';
import type { PlatformSelection } from '../oci/types.ts';
import { copyAll, registryHostConfig, type CopyEngineResult, type CopyItem, type SiteRegistry } from './engine.ts';
import { partitionByRepository, type Shard } from './shard.ts';
import { blobUsers, peerBlobs } from './shard-peers.ts';
import { createBlobHomes } from './site-target.ts';
import { mirrorReferrers, type ReferrersLoad } from './referrers.ts';

export interface MirrorEntry {
  reference: string;
  /** the digest the target must serve, when known (a lock entry, or a pinned reference) */
  digest?: string;
  /** bytes, when the lock knows them: what `--shard` balances by */
  size?: number;
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
  /** copy only this shard's repositories of the list (src/load/shard.ts) */
  shard?: Shard;
  /** false: leave out what refers to the images (signatures, attestations, SBOMs) */
  referrers?: boolean;
}

/** A locked entry whose upstream tag no longer resolves to the locked digest. */
export interface MovedTag {
  source: string;
  locked: string;
  /** what the tag resolves to upstream now; absent when it no longer resolves at all */
  upstream?: string;
  message?: string;
}

export interface MirrorResult extends CopyEngineResult {
  ok: boolean;
  from: string;
  registry: string;
  scheme: NamingScheme;
  /** locked tags that moved upstream (the locked digest was copied all the same) */
  movedTags: MovedTag[];
  /** with --shard: which shard this was and how many of the list's images it took */
  shard?: Shard & { images: number; of: number };
  /** the signatures, attestations and SBOMs copied (absent with --no-referrers) */
  referrers?: ReferrersLoad;
}

/** What to mirror from `--imagelist FILE` (a text list or an image lock, src/images/list.ts). */
export async function readMirrorList(file: string): Promise<MirrorEntry[]> {
  const { entries } = await readImageList(file);
  return entries.map((e) => ({
    reference: e.reference,
    ...(e.digest ? { digest: e.digest } : {}),
    ...(e.size !== undefined ? { size: e.size } : {}),
  }));
}

export async function mirrorImages(opts: MirrorOptions): Promise<MirrorResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const scheme = opts.scheme ?? 'host-swap';
  // the whole list is planned in every shard: the same clashes refused, the same partition
  const planned = planTargets(
    opts.images.map((i) => i.reference),
    opts.to.host,
    scheme,
  );
  const sizeOf = new Map(opts.images.map((i) => [normalizeImageReference(i.reference).original, i.size]));
  const named = opts.shard
    ? (
        partitionByRepository(
          planned.map((n) => {
            const size = sizeOf.get(n.source.original);
            return { repository: repositoryName(n.target), ...(size !== undefined ? { size } : {}) };
          }),
          opts.shard.total,
        )[opts.shard.index] ?? []
      ).map((i) => planned[i] as (typeof planned)[number])
    : planned;
  const pool = new RegistryPool({
    hosts: { ...opts.sources, [opts.to.host]: registryHostConfig(opts.to) },
    onEvent,
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  });
  const digestOf = new Map(opts.images.map((i) => [normalizeImageReference(i.reference).original, i.digest]));
  const items: CopyItem[] = named.map((n) => {
    const known = digestOf.get(n.source.original) ?? n.source.digest;
    const expected = known && isDigest(known) ? known : undefined;
    // a known digest is what is copied; the target tag (n.target.tag) is set to it
    return { named: n, selector: expected ?? manifestSelector(n.source), ...(expected ? { expected } : {}) };
  });
  const target = pool.client(opts.to.host);
  await target.ping(opts.signal);
  const movedTags = await findMovedTags(items, pool, opts.signal);
  for (const m of movedTags) {
    onEvent({
      type: 'warn',
      message: m.upstream
        ? `${m.source}: the upstream tag moved to ${m.upstream} since the lock (${m.locked}); copying the locked digest. Run \`sealift images\` to take the new one.`
        : `${m.source}: the upstream tag no longer resolves (${m.message ?? 'not found'}); copying the locked digest ${m.locked}.`,
      fields: { ...m },
    });
  }
  const homes = createBlobHomes();
  let ordered = items;
  if (opts.shard) {
    // the whole list's manifests: which repositories (in which shards) share which blob
    const all = planned.map((n) => {
      const known = digestOf.get(n.source.original) ?? n.source.digest;
      return { named: n, selector: known && isDigest(known) ? known : manifestSelector(n.source) };
    });
    const users = await blobUsers(all, pool, opts.signal);
    const mine = new Set(items.map((i) => i.named.target.repository));
    const fromPeer = peerBlobs({ users, mine, exists: (repo, d, signal) => target.blobExists(repo, d, signal) });
    for (const [d, repos] of users) homes.users.set(d, new Set([...repos].filter((r) => mine.has(r))));
    homes.fromPeer = fromPeer;
    // images whose blobs this shard owns go first: the peers waiting on them get them soonest
    const waits = (item: CopyItem) =>
      [...users].filter(([, r]) => r.has(item.named.target.repository) && !mine.has([...r].sort()[0] as string)).length;
    ordered = [...items].sort((a, b) => waits(a) - waits(b));
  }
  const engine = await copyAll({
    items: ordered,
    client: target,
    source: (item) => registrySource(pool.client(item.named.source.registry), item.named.source.repository),
    homes,
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
  const referrers =
    opts.referrers === false
      ? undefined
      : await mirrorReferrers({
          items,
          images: engine.images,
          pool,
          target,
          onEvent,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
  const ok =
    engine.failures.length === 0 &&
    engine.checks.every((c) => c.status === 'ok') &&
    (referrers?.failures.length ?? 0) === 0;
  return {
    ok,
    from: opts.from,
    registry: opts.to.host,
    scheme,
    ...engine,
    movedTags,
    ...(referrers ? { referrers } : {}),
    ...(opts.shard ? { shard: { ...opts.shard, images: named.length, of: planned.length } } : {}),
  };
}

/** Locked, tagged entries whose upstream tag resolves to another digest now (one HEAD each). */
async function findMovedTags(items: CopyItem[], pool: RegistryPool, signal?: AbortSignal): Promise<MovedTag[]> {
  const limit = pLimit(8);
  const found = await Promise.all(
    items.map((item) =>
      limit(async (): Promise<MovedTag | undefined> => {
        const src = item.named.source;
        if (!item.expected || src.tag === undefined) return undefined;
        const source = formatImageReference({ ...src, digest: undefined });
        try {
          const now = await pool
            .client(src.registry)
            .resolve({ repository: src.repository, selector: src.tag }, signal);
          return now.digest === item.expected ? undefined : { source, locked: item.expected, upstream: now.digest };
        } catch (e) {
          if (signal?.aborted) throw e;
          return { source, locked: item.expected, message: errorMessage(e) };
        }
      }),
    ),
  );
  return found.filter((m): m is MovedTag => m !== undefined);
}
