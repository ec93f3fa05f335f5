// `sealift load`: a bundle into the site registry. The stages read as the pipeline:
//   openBundleArchive (index the tar, refuse unsafe entries) -> checkBundle (the one check
//   bundle verify runs too: checksums, and every image complete, before the registry is
//   touched) -> planTargets (naming, collisions) -> checkBaseAtTarget (an incremental bundle:
//   what it does not carry is at the target, incremental.ts) -> copyImage per image (bundle ->
//   registry, one graph walk, blobs read by tar offset) -> checkTargets (every lock entry
//   resolved at the site) -> writeSiteFiles (--extract-to) -> writeReceipts (receipt.ts).
import { join } from 'node:path';
import {
  BundleSource,
  checkBundle,
  isBundleSigned,
  openBundleArchive,
  readVerifyKey,
  RECEIPT_FILE,
  verifyBundleSignature,
  type BundleIndex,
  type SignatureCheck,
} from '../bundle-format/index.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { planTargets, type NamingScheme } from '../oci/naming.ts';
import { formatImageReference, normalizeImageReference } from '../oci/reference.ts';
import type { CredentialLookup } from '../oci/credentials.ts';
import { RegistryClient } from '../oci/registry.ts';
import { findVerified, rememberVerified, verifiedCacheDir } from './verified-cache.ts';
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
  /** a bundle .tar, the first of its parts, or an extracted bundle directory */
  bundle: string;
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

export async function loadBundle(opts: LoadOptions): Promise<LoadResult> {
  const onEvent = opts.onEvent ?? noEvents;
  // the output directory before the bundle is hashed; each file's path once the bundle is read
  if (opts.extractTo) await checkOutputDir(opts.extractTo, '--extract-to');
  if (opts.receipt) await checkOutputFile(opts.receipt, '--receipt');
  onEvent({ type: 'phase', name: 'reading bundle' });
  const key = opts.verifyKey ? await readVerifyKey(opts.verifyKey) : undefined;
  const archive = await openBundleArchive(opts.bundle);
  try {
    // 0. with --verify-key, before anything else: an unsigned, other-key or altered bundle is
    // refused before the registry sees a request and before a site file is written
    const signed = key ? await verifyBundleSignature(archive, key) : undefined;
    const origin: SignatureCheck = signed?.check ?? { signed: isBundleSigned(archive), verified: false };
    // 1. nothing leaves a bundle that does not pass the check (hashed once per bundle file)
    const cacheDir = opts.cacheDir ?? verifiedCacheDir();
    const known = opts.recheck ? undefined : await findVerified(archive, cacheDir);
    if (known) {
      onEvent({
        type: 'info',
        message: `${archive.location} is unchanged since it matched checksums.sha256 at ${known.checkedAt}; not hashing it again (--recheck to force)`,
      });
    }
    const checked = await checkBundle(archive, {
      onEvent,
      ...(known ? { hashed: true } : {}),
      ...(signed ? { checksums: signed.checksums } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const verified = { files: checked.files, bytes: checked.bytes };
    if (!known) {
      await rememberVerified(archive, cacheDir, verified).catch((e: unknown) =>
        onEvent({ type: 'warn', message: `could not record the check in ${cacheDir}: ${errorMessage(e)}` }),
      );
    }
    const { checksums, index } = checked;
    const source = new BundleSource(archive, { checked: true }); // the check above passed (or the file is unchanged since it did)
    // the site's tools: a bundle without this platform's is refused before the registry is touched
    const toolsPlan = opts.extractTo ? planSiteTools(archive, opts.bundle, opts.sitePlatform) : undefined;
    // the bundle's values were generated for one registry host and naming scheme: push by that
    // scheme unless told otherwise
    const scheme = opts.scheme ?? index.registry?.scheme ?? 'host-swap';
    const values = index.registry
      ? {
          registry: index.registry.host,
          scheme: index.registry.scheme,
          matches: index.registry.host === opts.registry.host && index.registry.scheme === scheme,
        }
      : undefined;
    if (values && !values.matches) warnValuesElsewhere(values, opts.registry.host, scheme, onEvent);
    // every output path before the registry is touched
    if (opts.extractTo) await checkSiteDir(archive, opts.extractTo);
    const layoutImages = checked.images;
    if (layoutImages.length === 0) {
      throw new SealiftError('BUNDLE_INVALID', `${archive.location} holds no images (images/index.json lists none)`);
    }
    // 2. naming: refuse collisions before the registry is touched
    const named = namedTargets(
      layoutImages.map((i) => i.source),
      opts.registry.host,
      scheme,
      index,
    );
    const items: CopyItem[] = named.map((n) => {
      const key = formatImageReference(n.source);
      const li = layoutImages.find((l) => formatImageReference(normalizeImageReference(l.source)) === key);
      if (!li) throw new SealiftError('INTERNAL', `no layout entry for ${key}`);
      // checkBundle proved bundle.json and images/index.json agree on this digest
      return { named: n, selector: li.descriptor, expected: li.descriptor.digest };
    });
    const client = new RegistryClient(opts.registry.host, {
      hosts: { [opts.registry.host]: registryHostConfig(opts.registry) },
      onEvent,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    });
    await client.ping(opts.signal);
    // 3. an incremental bundle's base checked at the target before any push (from bundle.json:
    // incremental.ts); every image's graph, and which repositories use which blob (mounts, also of
    // blobs an earlier run placed)
    const mounts = await checkBaseAtTarget({
      location: archive.location,
      index,
      items,
      client,
      registry: opts.registry.host,
      onEvent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const graphs = await imageGraphs(source, items, index);
    const homes = blobHomesOf(graphs, mounts);
    const engine = await copyAll({
      items,
      client,
      source: (item) => (index.base ? baseAwareSource(source, client, item.named.target.repository) : source),
      homes,
      concurrency: opts.concurrency ?? 4,
      onEvent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
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
        archive,
        checksums,
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
        archive,
        checksums,
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
          checksums,
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
    return {
      ok,
      bundle: opts.bundle,
      registry: opts.registry.host,
      scheme,
      ...(values ? { values } : {}),
      verified: { ...verified, cached: known !== undefined },
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
    await archive.close();
  }
}
