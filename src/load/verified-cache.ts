// A re-run of load (after a failure, a SIGKILL, or for a no-op check) need not hash a large bundle
// again when its files are provably the ones checked: same device, inode, size, mtime and ctime
// (ctime cannot be set from user space; any write changes it). Every pushed byte is still
// verified against its digest while it streams, and every other rule of the check still runs.
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { BundleArchive, ChecksumResult } from '../bundle-format/index.ts';
import { writeFileAtomic } from '../fs-atomic.ts';

const CACHE_FILE = 'verified-bundles.json';

/** sealift's cache dir ($SEALIFT_CACHE_DIR, else XDG), without loading the render stage for it. */
export function verifiedCacheDir(): string {
  return process.env.SEALIFT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sealift');
}
type VerifiedCache = Record<string, { checkedAt: string; files: number; bytes: number }>;

/** Identity of the tar (or parts) on disk; undefined for a directory, which is always hashed. */
export async function bundleFingerprint(archive: Pick<BundleArchive, 'files'>): Promise<string | undefined> {
  if (archive.files.length === 0) return undefined;
  const parts = await Promise.all(
    archive.files.map(async (f) => {
      const st = await stat(f, { bigint: true });
      return [
        await realpath(f),
        String(st.dev),
        String(st.ino),
        String(st.size),
        String(st.mtimeNs),
        String(st.ctimeNs),
      ];
    }),
  );
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

async function readCache(dir: string): Promise<VerifiedCache> {
  try {
    return JSON.parse(await readFile(join(dir, CACHE_FILE), 'utf8')) as VerifiedCache;
  } catch {
    return {};
  }
}

/** When this exact bundle file was checked before, what that check found. */
export async function findVerified(
  archive: Pick<BundleArchive, 'files'>,
  cacheDir: string,
): Promise<(ChecksumResult & { checkedAt: string }) | undefined> {
  const key = await bundleFingerprint(archive);
  return key ? (await readCache(cacheDir))[key] : undefined;
}

export async function rememberVerified(
  archive: Pick<BundleArchive, 'files'>,
  cacheDir: string,
  result: ChecksumResult,
): Promise<void> {
  const key = await bundleFingerprint(archive);
  if (!key) return;
  const cache = await readCache(cacheDir);
  cache[key] = { checkedAt: new Date().toISOString(), ...result };
  // keep the newest 50
  const kept = Object.fromEntries(
    Object.entries(cache)
      .sort((a, b) => b[1].checkedAt.localeCompare(a[1].checkedAt))
      .slice(0, 50),
  );
  await writeFileAtomic(join(cacheDir, CACHE_FILE), `${JSON.stringify(kept, null, 2)}\n`);
}
