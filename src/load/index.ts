// `sealift load`: a bundle into the site registry, in one read of the bundle. The stages read as
// the pipeline:
//   openBundleStream (a tar, parts, a directory, stdin; zstd or gzip told by magic) -> for a
//   file: checkBundle without hashing (unsafe entries, listing, every image complete) before the
//   registry is touched -> planTargets (naming, collisions) and what is at the site, once
//   bundle.json is known -> streamPass (every blob pushed as it streams by, committed only when
//   it hashes to its name; site files spooled) -> the verdict (StreamCheck: the check bundle
//   verify gives) -> copyAll (manifests after their blobs, tags last; blobs mounted where the
//   stream placed them elsewhere) -> checkTargets -> writeSiteFiles (--extract-to) -> writeReceipts.
// With --verify-key the signature over checksums.sha256 is checked before anything else (a
// file: first; a stream: once its first entries passed, before the registry sees a request), and
// an incremental bundle's base is checked at the target before any push (incremental.ts).
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import {
  absentIndex,
  BundleSource,
  carriedGraph,
  checkBundle,
  isBundleSigned,
  isSitePath,
  openBundleStream,
  parseSiteToolPath,
  readVerifyKey,
  RECEIPT_FILE,
  StreamCheck,
  StreamedArchive,
  verifyBundleSignature,
  type BundleIndex,
  type BundleStream,
  type SignatureCheck,
} from '../bundle-format/index.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { planTargets, type NamingScheme } from '../oci/naming.ts';
import { formatImageReference, normalizeImageReference } from '../oci/reference.ts';
import type { CredentialLookup } from '../oci/credentials.ts';
import { RegistryClient } from '../oci/registry.ts';
import type { Digest } from '../oci/types.ts';
import { findVerified, rememberVerified, verifiedCacheDir } from './verified-cache.ts';
import { openSpool, streamPass, type StreamPassResult, type StreamPlan } from './stream-pass.ts';
import { copyAll, registryHostConfig, type CopyEngineResult, type CopyItem, type SiteRegistry } from './engine.ts';
import { checkOutputDir, checkOutputFile } from '../fs-paths.ts';
import { baseAwareSource, blobHomesOf, checkBaseAtTarget, imageGraphs } from './incremental.ts';
import { writeReceipts, type ReceiptResult } from './receipt.ts';
import { checkSiteDir, writeSiteFiles, type SiteFilesResult } from './site-files.ts';
import { installSiteTools, planSiteTools, type SiteToolsResult } from './site-tools.ts';
import { loadReferrers, type ReferrersLoad } from './referrers.ts';

export type { ReferrersLoad } from './referrers.ts';

export type {
  CheckStatus,
  CopyEngineResult,
  CopyItem,
  ImageLoad,
  ImageStatus,
  SiteRegistry,
  TargetCheck,
  TransferStats,
} from './engine.ts';

export interface LoadOptions extends RunOptions {
  /** a bundle .tar (or .tar.zst, .tar.gz), the first of its parts, an extracted bundle directory, or `-` (stdin) */
  bundle: string;
  /** what `-` reads (default: process.stdin) */
  stdin?: import('node:stream').Readable;
  registry: SiteRegistry;
  /** target naming (default: the scheme bundle.json records for the environment's values, else host-swap) */
  scheme?: NamingScheme;
  /** blob transfers at once (default 4) */
  concurrency?: number;
  extractTo?: string;
  credentials?: CredentialLookup;
  /** hash the bundle even when this exact file was checked before */
  recheck?: boolean;
  /** where the record of checked bundles is kept (default: $SEALIFT_CACHE_DIR or ~/.cache/sealift) */
  cacheDir?: string;
  /** with extractTo: whose carried tools to install (default: this machine's os/arch) */
  sitePlatform?: string;
  /** a PEM public key: nothing is loaded unless checksums.sha256 is signed by it */
  verifyKey?: string;
  /** false: push none of the signatures, attestations and SBOMs the bundle carries */
  referrers?: boolean;
  /** write the site receipt here (receipt.ts); with extractTo also always DIR/sealift-receipt.json */
  receipt?: string;
}

export interface LoadResult extends CopyEngineResult {
  ok: boolean;
  bundle: string;
  registry: string;
  scheme: NamingScheme;
  /** where the bundle's values point (bundle.json), and whether this load put the images there */
  values?: { registry: string; scheme: NamingScheme; matches: boolean };
  verified: { files: number; bytes: number; cached: boolean };
  /** the bundle's origin: checked (verified) only with --verify-key; signed: it carries a signature */
  origin: SignatureCheck;
  siteFiles?: SiteFilesResult;
  siteTools?: SiteToolsResult;
  /** the signatures, attestations and SBOMs pushed (absent with --no-referrers) */
  referrers?: ReferrersLoad;
  /** an incremental bundle: its base, and how much of it this load relied on */
  base?: { identity: string; name: string; absent: number; mounted: number };
  receipt?: ReceiptResult;
}

/**
 * planTargets, with a hint fitted to the bundle: when its values were generated host-swapped,
 * `--scheme scoped` alone would push names the values do not use, so the way out is the
 * environment's scheme and a new bundle.
 */
function namedTargets(
  sources: string[],
  host: string,
  scheme: NamingScheme,
  index: BundleIndex,
): ReturnType<typeof planTargets> {
  try {
    return planTargets(sources, host, scheme);
  } catch (e) {
    const clashes = e instanceof SealiftError ? e.details?.clashes : undefined;
    if (!clashes || !index.environment || index.registry?.scheme !== 'host-swap') throw e;
    throw new SealiftError('USAGE', (e as SealiftError).message, {
      hint: `This bundle's values (environment ${index.environment}) name images host-swapped, so --scheme scoped alone would leave them pointing at names no load pushes. Set registry.scheme: scoped in environments/${index.environment}.yaml, run sealift generate, images and bundle again, and load the new bundle (it loads scoped by default).`,
      details: { clashes },
    });
  }
}

/**
 * The registry given (or the scheme) is not what the bundle's values name. Not refused: a site may
 * reach its registry by another address than its nodes do (a port forward, a second interface).
 */
function warnValuesElsewhere(
  values: { registry: string; scheme: NamingScheme },
  host: string,
  scheme: NamingScheme,
  onEvent: NonNullable<RunOptions['onEvent']>,
): void {
  const sample = (h: string, s: NamingScheme) => (s === 'scoped' ? `${h}/docker.io/istio/pilot` : `${h}/istio/pilot`);
  const what = [
    ...(values.registry !== host ? [`registry ${values.registry}, not ${host}`] : []),
    ...(values.scheme !== scheme ? [`scheme ${values.scheme}, not ${scheme}`] : []),
  ].join(' and ');
  onEvent({
    type: 'warn',
    message: `the bundle's values name images as ${sample(values.registry, values.scheme)} (${what}); this load puts them at ${sample(host, scheme)}. Pods deployed from those values pull them only if ${values.registry} is another address of ${host}${values.scheme !== scheme ? ` and the scheme is ${values.scheme}` : ''}. ${
      values.scheme !== scheme
        ? `Load with --scheme ${values.scheme}, or set registry.scheme: ${scheme} in the environment and make the bundle again.`
        : `If the nodes reach the registry as ${host}, set registry.host: ${host} in the environment and make the bundle again.`
    }`,
    fields: { valuesRegistry: values.registry, valuesScheme: values.scheme, registry: host, scheme },
  });
}

/** The images' target repositories (by root digest) and whether each is at the site with that digest. */
async function siteState(
  client: RegistryClient,
  images: { reference: string; digest: string }[],
  named: ReturnType<typeof planTargets>,
  signal?: AbortSignal,
): Promise<StreamPlan> {
  const byRef = new Map(named.map((n) => [formatImageReference(n.source), n]));
  const roots = new Map<Digest, string[]>();
  const present = new Set<string>();
  const limit = pLimit(16);
  await Promise.all(
    images.map((img) =>
      limit(async () => {
        const n = byRef.get(formatImageReference(normalizeImageReference(img.reference)));
        if (!n) return;
        const repo = n.target.repository;
        roots.set(img.digest as Digest, [...(roots.get(img.digest as Digest) ?? []), repo]);
        const have = await client.manifestExists(repo, n.target.tag ?? img.digest, signal);
        if (have?.digest === img.digest) present.add(repo);
      }),
    ),
  );
  return { roots, present };
}

export async function loadBundle(opts: LoadOptions): Promise<LoadResult> {
  const onEvent = opts.onEvent ?? noEvents;
  // the output directory before the bundle is read; each file's path once its listing is known
  let extractExisted = true;
  if (opts.extractTo) {
    await checkOutputDir(opts.extractTo, '--extract-to');
    extractExisted = await stat(opts.extractTo).then(
      () => true,
      () => false,
    );
  }
  if (opts.receipt) await checkOutputFile(opts.receipt, '--receipt');
  onEvent({ type: 'phase', name: 'reading bundle' });
  const key = opts.verifyKey ? await readVerifyKey(opts.verifyKey) : undefined;
  const stream = await openBundleStream(opts.bundle, opts.stdin);
  let spool: { dir: string; remove: () => Promise<void> } | undefined;
  let done = false;
  try {
    const cacheDir = opts.cacheDir ?? verifiedCacheDir();
    const known = opts.recheck || stream.files.length === 0 ? undefined : await findVerified(stream, cacheDir);
    const check = new StreamCheck(stream);
    const archive = stream.archive;
    // 0. with --verify-key, a file's signature before anything else: an unsigned, other-key or
    // altered bundle is refused before the registry sees a request and before a site file is written
    // (a stream's once its first entries passed: makePlan)
    const signedFile = archive && key ? await verifyBundleSignature(archive, key) : undefined;
    let origin: SignatureCheck = signedFile?.check ?? {
      signed: archive ? isBundleSigned(archive) : false,
      verified: false,
    };
    let mounts = new Map<string, string>();
    const client = new RegistryClient(opts.registry.host, {
      hosts: { [opts.registry.host]: registryHostConfig(opts.registry) },
      onEvent,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    });
    // 1. a file (or directory) is checked for everything but its bytes' hashes before the registry
    //    is touched: its listing against checksums.sha256, and every image complete (manifests
    //    read by offset); its bytes are hashed as they stream by below
    // With --verify-key a file is hashed whole first (a second read): a file altered after signing
    // is refused before the registry sees a request, not only kept out of it blob by blob
    const preflight = archive
      ? await checkBundle(archive, {
          onEvent,
          hashed: !key || known !== undefined,
          ...(signedFile ? { checksums: signedFile.checksums } : {}),
        })
      : undefined;
    if (preflight) check.useChecksums(new Map(preflight.checksums));
    if (known) {
      onEvent({
        type: 'info',
        message: `${stream.location} is unchanged since it matched checksums.sha256 at ${known.checkedAt}; not hashing it again unless an image is missing (--recheck to force)`,
      });
    }
    // 2. what bundle.json says (for a stream: once it has passed, before any blob)
    let index: BundleIndex | undefined;
    let scheme: NamingScheme = opts.scheme ?? 'host-swap';
    let values: LoadResult['values'];
    let named: ReturnType<typeof planTargets> = [];
    let toolsPlan: ReturnType<typeof planSiteTools> | undefined;
    let plan: StreamPlan | undefined;
    const makePlan = async (idx: BundleIndex): Promise<StreamPlan> => {
      if (plan) return plan;
      if (!archive) {
        // a stream: checksums.sha256 and its signature are the entries before bundle.json
        const signed = key ? await verifyBundleSignature(check.archive, key) : undefined;
        origin = signed?.check ?? { signed: isBundleSigned(check.archive), verified: false };
      }
      index = idx;
      scheme = opts.scheme ?? idx.registry?.scheme ?? 'host-swap';
      values = idx.registry
        ? {
            registry: idx.registry.host,
            scheme: idx.registry.scheme,
            matches: idx.registry.host === opts.registry.host && idx.registry.scheme === scheme,
          }
        : undefined;
      if (values && !values.matches) warnValuesElsewhere(values, opts.registry.host, scheme, onEvent);
      if (idx.images.length === 0)
        throw new SealiftError('BUNDLE_INVALID', `${stream.location} holds no images (bundle.json lists none)`);
      // naming: collisions refused before the registry is touched
      named = namedTargets(
        idx.images.map((i) => i.reference),
        opts.registry.host,
        scheme,
        idx,
      );
      if (opts.extractTo) {
        // the site's tools and every output path, before the registry is touched (a stream knows
        // the paths from checksums.sha256, its first entry)
        const listing = archive ?? listingOf(stream, check.checksums);
        toolsPlan = planSiteTools(listing, opts.bundle, opts.sitePlatform);
        await checkSiteDir(listing, opts.extractTo);
        spool = await openSpool(opts.extractTo);
      }
      await client.ping(opts.signal);
      // an incremental bundle: what it does not carry is at the target, before any push
      mounts = await checkBaseAtTarget({
        location: stream.location,
        index: idx,
        items: named.map((n) => ({ named: n })),
        client,
        registry: opts.registry.host,
        onEvent,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      plan = await siteState(client, idx.images, named, opts.signal);
      return plan;
    };
    // a file's plan (and the site's state) before anything is read past the preflight
    if (preflight && archive) await makePlan(preflight.index);
    const allPresent = () => plan !== undefined && named.every((n) => plan!.present.has(n.target.repository));
    // 3. the no-op: an unchanged file whose every image is at the site is not read again
    const skipRead = known !== undefined && preflight !== undefined && !opts.extractTo && allPresent();
    let owners: Map<Digest, Set<string>> | undefined;
    if (preflight && archive && !skipRead) {
      // a file's graphs are read by offset now: every blob goes straight into its repository
      owners = new Map();
      const source = new BundleSource(archive, { checked: true });
      const repoOf = new Map(named.map((n) => [formatImageReference(n.source), n.target.repository]));
      const absent = absentIndex(preflight.index);
      for (const li of preflight.images) {
        const repo = repoOf.get(formatImageReference(normalizeImageReference(li.source)));
        if (!repo) continue;
        for (const b of (await carriedGraph(source, li.descriptor, li.source, absent)).blobs)
          owners.set(b.digest, (owners.get(b.digest) ?? new Set<string>()).add(repo));
      }
    }
    const pass: StreamPassResult = skipRead
      ? {
          placed: new Map(),
          inRepo: new Set(),
          failed: new Map(),
          stats: { blobsPushed: 0, bytesPushed: 0, blobsPresent: 0 },
        }
      : await streamPass({
          stream,
          check,
          client,
          onIndex: makePlan,
          concurrency: opts.concurrency ?? 4,
          ...(owners ? { owners } : {}),
          // known once bundle.json has passed (makePlan opens it)
          spool: () => (spool && toolsPlan ? { dir: spool.dir, wanted: spoolWanted(toolsPlan) } : undefined),
          onEvent,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
    // 4. the verdict over every byte read: nothing is tagged from a bundle that fails it
    const checked = skipRead ? preflight! : await check.finish();
    const verified = skipRead
      ? { files: known!.files, bytes: known!.bytes }
      : { files: checked.files, bytes: checked.bytes };
    if (!skipRead && stream.files.length > 0) {
      await rememberVerified(stream, cacheDir, verified).catch((e: unknown) =>
        onEvent({ type: 'warn', message: `could not record the check in ${cacheDir}: ${errorMessage(e)}` }),
      );
    }
    if (!index) index = checked.index;
    const items: CopyItem[] = named.map((n) => {
      const key = formatImageReference(n.source);
      const li = checked.images.find((l) => formatImageReference(normalizeImageReference(l.source)) === key);
      if (!li) throw new SealiftError('INTERNAL', `no layout entry for ${key}`);
      // the check proved bundle.json and images/index.json agree on this digest
      return { named: n, selector: li.descriptor, expected: li.descriptor.digest };
    });
    // 5. manifests (after all their blobs) and tags, last: blobs the stream placed elsewhere are mounted
    const source = new BundleSource(archive ?? check.archive);
    // every image's graph (an incremental bundle's stops at what it does not carry), and which
    // repositories use which blob: the base's blobs are mounted from where checkBaseAtTarget found them
    const graphs = await imageGraphs(source, items, index);
    const homes = blobHomesOf(graphs, mounts);
    homes.known = { pairs: pass.inRepo, hits: 0 };
    for (const [digest, repo] of pass.placed) homes.placed.set(digest, Promise.resolve(repo));
    const incremental = index.base !== undefined;
    const engine = await copyAll({
      items,
      client,
      source: (item) => (incremental ? baseAwareSource(source, client, item.named.target.repository) : source),
      homes,
      concurrency: opts.concurrency ?? 4,
      ...(plan ? { servedAlready: plan.present } : {}),
      onEvent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    engine.stats.blobsPushed += pass.stats.blobsPushed;
    engine.stats.bytesPushed += pass.stats.bytesPushed;
    engine.stats.blobsPresent += pass.stats.blobsPresent - homes.known.hits;
    const referrers =
      opts.referrers === false
        ? undefined
        : await loadReferrers({
            items,
            images: engine.images,
            index,
            source,
            client,
            concurrency: opts.concurrency ?? 4,
            onEvent,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
    let siteFiles: SiteFilesResult | undefined;
    let siteTools: SiteToolsResult | undefined;
    if (opts.extractTo) {
      onEvent({ type: 'phase', name: 'writing site files' });
      if (index.registry === undefined && index.environment && scheme === 'scoped') {
        // a bundle from before bundle.json recorded the scheme: its values are host-swapped
        onEvent({
          type: 'warn',
          message: `--scheme scoped: this bundle does not record how its values name images (made by an older sealift: host-swapped, ${opts.registry.host}/istio/pilot), but this load put them at ${opts.registry.host}/<upstream-host>/...; pods pulling those values will not find them. Nodes pulling upstream names through the written hosts.toml do.`,
        });
      }
      siteFiles = await writeSiteFiles({
        archive: check.archive,
        checksums: checked.checksums,
        dir: opts.extractTo,
        sources: named.map((n) => n.source),
        hosts: {
          registry: opts.registry.host,
          scheme,
          transport: opts.registry.plainHttp ? 'plain-http' : opts.registry.insecure ? 'insecure' : 'https',
          ...(opts.registry.caFile ? { caFile: opts.registry.caFile } : {}),
        },
        onEvent,
      });
      siteTools = await installSiteTools({
        archive: check.archive,
        checksums: checked.checksums,
        plan: toolsPlan!,
        dir: opts.extractTo,
        facts: {
          bundle: opts.bundle,
          ...(index.environment ? { environment: index.environment } : {}),
          registry: opts.registry.host,
          transportFlags: opts.registry.plainHttp
            ? ['--plain-http']
            : opts.registry.insecure
              ? ['--insecure']
              : opts.registry.caFile
                ? ['--ca-file', opts.registry.caFile]
                : [],
        },
        ...(index.base ? { base: index.base } : {}),
        onEvent,
      });
    }
    const receiptFiles = [
      ...(opts.receipt ? [opts.receipt] : []),
      ...(opts.extractTo ? [join(opts.extractTo, RECEIPT_FILE)] : []),
    ];
    const receipt = receiptFiles.length
      ? await writeReceipts({
          files: receiptFiles,
          bundle: opts.bundle,
          index,
          checksums: checked.checksums,
          graphs,
          checks: engine.checks,
          client,
          registry: opts.registry.host,
          scheme,
          ...(opts.signal ? { signal: opts.signal } : {}),
        })
      : undefined;
    const ok =
      engine.failures.length === 0 &&
      engine.checks.every((c) => c.status === 'ok') &&
      (referrers?.failures.length ?? 0) === 0;
    done = true;
    return {
      ok,
      bundle: opts.bundle,
      registry: opts.registry.host,
      scheme,
      ...(values ? { values } : {}),
      verified: { ...verified, cached: skipRead },
      origin,
      ...engine,
      ...(siteFiles ? { siteFiles } : {}),
      ...(siteTools ? { siteTools } : {}),
      ...(referrers ? { referrers } : {}),
      ...(index.base
        ? {
            base: {
              identity: index.base.identity,
              name: index.base.name,
              absent: index.base.absent.length,
              mounted: mounts.size,
            },
          }
        : {}),
      ...(receipt ? { receipt } : {}),
    };
  } finally {
    await spool?.remove();
    // a refused load leaves no site directory it made
    if (!done && opts.extractTo && !extractExisted) await rm(opts.extractTo, { recursive: true, force: true });
    await stream.close();
  }
}

/** A stream's listing for the pre-checks, from checksums.sha256 (sizes are not known yet). */
function listingOf(stream: BundleStream, checksums: ReadonlyMap<string, string> | undefined): StreamedArchive {
  const listing = new StreamedArchive(stream);
  for (const path of checksums?.keys() ?? []) listing.add({ path, type: 'file', offset: 0, size: 0 });
  return listing;
}

/** What the stream writes out for --extract-to: the site files, and the tools of the site's platform. */
function spoolWanted(plan: ReturnType<typeof planSiteTools>): (path: string) => boolean {
  return (path) => isSitePath(path) || parseSiteToolPath(path)?.platform === plan.platform;
}
