// Shards of one list that run at once share blobs across their repositories (a common base).
// Without a word between them each would upload it. So every shard reads the manifests of the
// whole list (small; no blob is read), learns which repositories use which blob, and agrees on
// one owner per blob: the shard of the first such repository by name. The owner uploads; the
// others wait a bounded time for it to appear in a peer's repository and mount it from there
// (a POST, no bytes). A dead or slow owner only costs the wait: then the shard uploads itself.
import pLimit from 'p-limit';
import type { RegistryPool } from '../oci/registry.ts';
import type { Digest } from '../oci/types.ts';
import type { CopyItem } from './engine.ts';

/** how long a shard waits for a blob's owner before uploading it itself */
export const PEER_WAIT_MS = 30_000;
const POLL_MS = 250;

/** digest -> the target repositories whose images (in the source manifests) use it */
export async function blobUsers(
  items: readonly CopyItem[],
  pool: RegistryPool,
  signal?: AbortSignal,
): Promise<Map<Digest, Set<string>>> {
  const users = new Map<Digest, Set<string>>();
  const use = (d: Digest, repo: string) => users.set(d, (users.get(d) ?? new Set()).add(repo));
  const limit = pLimit(8);
  await Promise.all(
    items.map((item) =>
      limit(async () => {
        const src = item.named.source;
        const client = pool.client(src.registry);
        const repo = item.named.target.repository;
        try {
          const root = await client.fetchManifest(src.repository, item.selector as string, signal);
          const manifests = root.kind === 'index' ? [] : [root];
          if (root.kind === 'index')
            for (const child of root.parsed.manifests) {
              const m = await client.fetchManifest(src.repository, child.digest, signal);
              if (m.kind === 'manifest') manifests.push(m);
            }
          for (const m of manifests)
            if (m.kind === 'manifest') for (const b of [m.parsed.config, ...m.parsed.layers]) use(b.digest, repo);
        } catch (e) {
          // the copy reads it again and reports what is wrong; here it only costs sharing
          if (signal?.aborted) throw e;
        }
      }),
    ),
  );
  return users;
}

/**
 * For a blob this shard must place in `repo`: a peer shard's repository that holds it, once its
 * owner (another shard) has committed it; undefined when this shard owns it, or the wait ran out.
 */
export function peerBlobs(opts: {
  users: Map<Digest, Set<string>>;
  /** the repositories this shard copies */
  mine: ReadonlySet<string>;
  exists: (repo: string, digest: Digest, signal?: AbortSignal) => Promise<boolean>;
  waitMs?: number;
}): (digest: Digest, repo: string, signal?: AbortSignal) => Promise<string | undefined> {
  return async (digest, _repo, signal) => {
    const all = [...(opts.users.get(digest) ?? [])].sort();
    const peers = all.filter((r) => !opts.mine.has(r));
    if (peers.length === 0 || opts.mine.has(all[0] as string)) return undefined;
    const until = Date.now() + (opts.waitMs ?? PEER_WAIT_MS);
    for (;;) {
      for (const p of peers.slice(0, 4)) if (await opts.exists(p, digest, signal)) return p;
      if (Date.now() >= until || signal?.aborted) return undefined;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
}
