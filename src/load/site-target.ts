// A repository of the site registry as a copy target that mounts blobs across repositories:
// a blob is uploaded once per run and mounted into every other repository that needs it (a
// POST, no bytes). Blobs a previous run left in another repository are mounted from there too.
import type { Readable } from 'node:stream';
import type { ImageTarget } from '../oci/copy.ts';
import type { RegistryClient } from '../oci/registry.ts';
import { registryTarget } from '../oci/stores.ts';
import type { Descriptor, Digest } from '../oci/types.ts';

/** Shared by every repository of one run. */
export interface BlobHomes {
  /** digest -> the repository it is being (or was) pushed to in this run; undefined if that failed */
  placed: Map<Digest, Promise<string | undefined>>;
  /** digest -> the repositories of this run whose images use it (where a previous run may have put it) */
  users: Map<Digest, Set<string>>;
  /** shards running at once (mirror --shard): a peer's repository holding it, once its owner committed it */
  fromPeer?: (digest: Digest, repo: string, signal?: AbortSignal) => Promise<string | undefined>;
  /** `repo digest` pairs known to be there (load's streamed pushes): not asked again; `hits` counts the answers */
  known?: { pairs: Set<string>; hits: number };
}

export function createBlobHomes(): BlobHomes {
  return { placed: new Map(), users: new Map() };
}

export function siteRegistryTarget(client: RegistryClient, repo: string, homes: BlobHomes): ImageTarget {
  const base = registryTarget(client, repo);
  return {
    ...base,
    async hasBlob(desc: Descriptor, signal?: AbortSignal) {
      if (homes.known?.pairs.has(`${repo} ${desc.digest}`)) {
        homes.known.hits++;
        return true;
      }
      return base.hasBlob(desc, signal);
    },
    async pushBlob(desc: Descriptor, open: () => Promise<Readable>, signal?: AbortSignal) {
      const earlier = homes.placed.get(desc.digest);
      if (earlier) {
        const from = await earlier.catch(() => undefined);
        if (from && from !== repo && (await client.mountBlob(repo, from, desc.digest, signal))) return 'mounted';
      }
      let settle: (home: string | undefined) => void = () => {};
      homes.placed.set(desc.digest, new Promise((r) => (settle = r)));
      try {
        // another repository of this bundle may hold it from an earlier, interrupted run
        const others = [...(homes.users.get(desc.digest) ?? [])].filter((r) => r !== repo).slice(0, 2);
        for (const from of others) {
          if (await client.mountBlob(repo, from, desc.digest, signal)) {
            settle(repo);
            return 'mounted';
          }
        }
        const peer = await homes.fromPeer?.(desc.digest, repo, signal);
        if (peer && (await client.mountBlob(repo, peer, desc.digest, signal))) {
          settle(repo);
          return 'mounted';
        }
        const outcome = await client.pushBlob(repo, desc, open, signal);
        settle(repo);
        return outcome;
      } catch (e) {
        settle(undefined);
        homes.placed.delete(desc.digest);
        throw e;
      }
    },
  };
}
