// The site receipt a load writes (`--receipt FILE`, and DIR/sealift-receipt.json with
// --extract-to): every manifest and blob of every image the site serves with the right digest,
// each found by a HEAD in its repository after the copy (not assumed from what was pushed), plus
// the digests of the bundle's site tools and files. `sealift bundle --since RECEIPT` reads it.
import { basename } from 'node:path';
import pLimit from 'p-limit';
import {
  BUNDLE_INDEX_FILE,
  isSitePath,
  parseSiteToolPath,
  receiptUrl,
  serializeReceipt,
  type BundleIndex,
  type ImageGraph,
  type Receipt,
} from '../bundle-format/index.ts';
import { SealiftError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import type { NamingScheme } from '../oci/naming.ts';
import { formatImageReference } from '../oci/reference.ts';
import type { RegistryClient } from '../oci/registry.ts';
import type { Digest } from '../oci/types.ts';
import { SEALIFT_VERSION } from '../runtime.ts';
import type { CopyItem, TargetCheck } from './engine.ts';

export interface ReceiptResult {
  files: string[];
  images: number;
  repositories: number;
  manifests: number;
  blobs: number;
}

/** What the registry serves, by HEAD, of every checked image's graph; then the receipt, atomically, to each file. */
export async function writeReceipts(opts: {
  files: readonly string[];
  bundle: string;
  index: BundleIndex;
  checksums: ReadonlyMap<string, string>;
  graphs: ReadonlyMap<CopyItem, ImageGraph>;
  checks: readonly TargetCheck[];
  client: RegistryClient;
  registry: string;
  scheme: NamingScheme;
  signal?: AbortSignal;
}): Promise<ReceiptResult> {
  const identity = opts.checksums.get(BUNDLE_INDEX_FILE);
  if (!identity) throw new SealiftError('INTERNAL', `${opts.bundle}: no checksum line for ${BUNDLE_INDEX_FILE}`);
  const ok = new Map(opts.checks.filter((c) => c.status === 'ok' && c.found).map((c) => [c.source, c]));
  const images: Receipt['images'] = [];
  const wanted = new Map<string, { manifests: Set<string>; blobs: Set<string> }>();
  for (const [item, g] of opts.graphs) {
    const check = ok.get(formatImageReference(item.named.source));
    if (!check) continue; // not served with its digest: not in the receipt, so a --since carries it again
    images.push({ source: check.source, target: check.target, digest: check.found! });
    const repo = item.named.target.repository;
    const w = wanted.get(repo) ?? { manifests: new Set<string>(), blobs: new Set<string>() };
    wanted.set(repo, w);
    for (const m of g.manifests) w.manifests.add(m.digest);
    for (const b of g.blobs) w.blobs.add(b.digest);
    for (const a of g.absent) w[a.kind === 'manifest' ? 'manifests' : 'blobs'].add(a.digest);
  }
  const limit = pLimit(8);
  const repositories: Receipt['repositories'] = {};
  let manifests = 0;
  let blobs = 0;
  for (const [repo, w] of [...wanted].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const m = await Promise.all(
      [...w.manifests].map((d) =>
        limit(async () => {
          const have = await opts.client.manifestExists(repo, d, opts.signal);
          return have && (!have.digest || have.digest === d) ? d : undefined;
        }),
      ),
    );
    const b = await Promise.all(
      [...w.blobs].map((d) =>
        limit(async () => ((await opts.client.blobExists(repo, d as Digest, opts.signal)) ? d : undefined)),
      ),
    );
    const present = {
      manifests: m.filter((d): d is string => !!d).sort(),
      blobs: b.filter((d): d is string => !!d).sort(),
    };
    manifests += present.manifests.length;
    blobs += present.blobs.length;
    repositories[repo] = present;
  }
  const siteTools = new Map<string, string>();
  for (const [path, sha256] of opts.checksums) if (parseSiteToolPath(path)) siteTools.set(path, sha256);
  for (const t of opts.index.base?.siteTools ?? []) if (!siteTools.has(t.path)) siteTools.set(t.path, t.sha256);
  const urls = new Map<string, string>([
    ...opts.index.charts.map((c) => [c.path, c.source] as const),
    ...opts.index.files.flatMap((f) => (f.url ? [[f.path, f.url] as const] : [])),
  ]);
  const files: Receipt['files'] = [...opts.checksums]
    .filter(([path]) => isSitePath(path))
    .map(([path, sha256]) => {
      const url = urls.get(path);
      return { path, sha256, ...(url ? { url: receiptUrl(url) } : {}) };
    });
  const receipt: Receipt = {
    kind: 'sealift-receipt',
    version: 1,
    createdAt: new Date().toISOString(),
    tool: { name: 'sealift', version: SEALIFT_VERSION },
    registry: { host: opts.registry },
    scheme: opts.scheme,
    bundle: {
      identity: `sha256:${identity}`,
      name: basename(opts.bundle),
      createdAt: opts.index.createdAt,
      environment: opts.index.environment,
      base: opts.index.base?.identity ?? null,
    },
    images,
    repositories,
    siteTools: [...siteTools].map(([path, sha256]) => ({ path, sha256 })),
    files,
  };
  const text = serializeReceipt(receipt);
  for (const f of opts.files) await writeFileAtomic(f, text);
  return { files: [...opts.files], images: images.length, repositories: wanted.size, manifests, blobs };
}
