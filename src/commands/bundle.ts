// `sealift bundle -e <env> | --imagelist FILE` and `sealift bundle verify <bundle>`:
// flags -> BundleOptions -> a summary.
import { Command } from 'commander';
import { SIGNATURE_FILE as CHECKSUMS_SIG } from '../bundle-format/index.ts';
import { SealiftError } from '../errors.ts';
import type { BundleResult, BundleVerifyResult, Compression, SignBundleResult } from '../bundle/index.ts';
import {
  collect,
  overlayOption,
  overlaysFrom,
  parseConcurrency,
  registryHostsFromFlags,
  platformSelectionFrom,
  stackDirFrom,
  withPlatformFlags,
  withTransportFlags,
  type PlatformFlags,
} from './flags.ts';
import { bundleInspectCommands } from './bundle-inspect.ts';
import { interruptible } from './interrupt.ts';
import { originLine } from './load.ts';
import { createOutput, formatBytes, withCommonFlags, type GlobalFlags } from './output.ts';

interface BundleFlags extends GlobalFlags, PlatformFlags {
  env?: string;
  imagelist?: string;
  out: string;
  name?: string;
  stack?: string;
  overlay?: string[];
  imagelists?: string;
  concurrency: string;
  splitSize?: string;
  gzip?: boolean;
  compress?: string;
  keepWork?: boolean;
  pack: boolean;
  plainHttp?: string[];
  insecure?: string[];
  caFile?: string[];
  mirror: string[];
  mirrorFallback?: boolean;
  sitePlatform: string[];
  /** commander's --no-referrers */
  referrers: boolean;
  siteTools: boolean;
  signKey?: string;
  since?: string;
}

/** The private key of --sign-key / --key, its password (if encrypted) from COSIGN_PASSWORD as cosign takes it. */
async function signingKeyFrom(file: string) {
  const { loadSigningKey } = await import('../bundle/index.ts');
  return loadSigningKey(file, process.env.COSIGN_PASSWORD);
}

async function sitePlatformsFrom(f: Pick<BundleFlags, 'sitePlatform' | 'siteTools'>): Promise<string[]> {
  const { parseSitePlatforms, DEFAULT_SITE_PLATFORMS } = await import('../bundle/site-tools.ts');
  if (!f.siteTools && f.sitePlatform.length)
    throw new SealiftError('USAGE', '--site-platform and --no-site-tools exclude each other');
  if (!f.siteTools) return [];
  return f.sitePlatform.length ? parseSitePlatforms(f.sitePlatform) : [...DEFAULT_SITE_PLATFORMS];
}

/** --compress (or the older --gzip): one of the packer's compressions, for a tar. */
function compressionFrom(
  f: Pick<BundleFlags, 'compress' | 'gzip' | 'pack'>,
  kinds: readonly Compression[],
): { compress?: Compression } {
  const c = f.compress ?? (f.gzip ? 'gzip' : undefined);
  if (c === undefined) return {};
  if (!(kinds as readonly string[]).includes(c))
    throw new SealiftError('USAGE', `--compress ${c}: give ${kinds.join(', ')}`);
  if (f.gzip && c !== 'gzip') throw new SealiftError('USAGE', `--gzip and --compress ${c} exclude each other`);
  if (f.pack === false && c !== 'none')
    throw new SealiftError('USAGE', '--no-pack writes a directory: there is no tar to compress');
  return { compress: c as Compression };
}

function summary(r: BundleResult): string[] {
  const t = r.index.totals;
  const lines = [
    `${t.images} images, ${t.blobs} unique blobs (${formatBytes(t.blobBytes)}; sharing saved ${formatBytes(t.savedBySharing)}), ${t.charts} charts, ${t.files} files`,
    `fetched ${formatBytes(r.bytesTransferred)} this run`,
    ...(r.index.base
      ? [
          `incremental on base ${r.index.base.name} (${r.index.base.from}, bundle.json ${r.index.base.identity.slice(0, 19)}): ${r.index.base.absent.length} manifests and blobs (${formatBytes(r.index.base.absent.reduce((n, a) => n + a.size, 0))}) not carried${r.index.base.siteTools.length ? `, ${r.index.base.siteTools.length} site tools unchanged` : ''}`,
        ]
      : []),
    r.index.siteTools
      ? `site tools for ${r.index.siteTools.platforms.join(', ')}: ${formatBytes(r.index.siteTools.files.reduce((n, f) => n + f.size, 0))} (bin/<os>-<arch>/: sealift, helm, helmfile, helm-diff)`
      : 'no site tools carried (--no-site-tools)',
  ];
  if (r.signature)
    lines.push(`signed ${CHECKSUMS_SIG} with ${r.signature.key} (public key ${r.signature.fingerprint})`);
  if (r.pack) {
    for (const f of r.pack.files) lines.push(`wrote ${f.path} (${formatBytes(f.size)}) sha256 ${f.sha256}`);
    lines.push(`checksums of the bundle file(s): ${r.pack.checksumFile}`);
  } else lines.push(`bundle directory: ${r.workDir}`);
  return lines;
}

export function registerBundle(program: Command): void {
  const cmd = new Command('bundle')
    .description(
      'Pull every image (digest-exact, deduplicated, resumable) and the charts into one verified offline bundle.',
    )
    .option(
      '-e, --env <env>',
      'the environment: images from imagelists/<env>.lock.json, charts and files from its release plan',
    )
    .option('--imagelist <file>', 'images only: a list (one reference a line) or an image lock (.json)')
    .option('-o, --out <dir>', 'output directory', 'bundles')
    .option('--name <name>', 'bundle file name without .tar (default: the environment or the list name)')
    .option(
      '--stack <dir>',
      'stack directory (environments/, templates/, imagelists/; default: current directory, else the sealift checkout)',
    )
    .addOption(overlayOption())
    .option('--imagelists <dir>', 'where <env>.lock.json is (default <stack>/imagelists)')
    .option('--concurrency <n>', 'blob transfers at once', '4')
    .option('--split-size <size>', 'split the bundle into parts of this size (e.g. 4G)')
    .option(
      '--compress <zstd|gzip|none>',
      'compress the whole tar into <name>.tar.zst or .tar.gz (split after compression); default none: layers are compressed already',
    )
    .option('--gzip', 'the same as --compress gzip')
    .option('--keep-work', 'keep <name>.work/ (site files, manifests) after packing')
    .option('--no-pack', 'leave the bundle as the directory <name>.work/ (no tar)')
    .option(
      '--mirror <host=endpoint>',
      'pull HOST through ENDPOINT (HOST[:PORT][/PREFIX]), e.g. docker.io=mirror.corp:5000 (repeatable)',
      collect,
      [] as string[],
    )
    .option('--mirror-fallback', 'when every mirror fails, try the registry itself')
    .option(
      '--site-platform <os/arch,...>',
      'carry sealift, helm, helmfile and helm-diff for these site platforms as bin/<os>-<arch>/ (default linux/amd64; linux/amd64,linux/arm64 for both)',
      collect,
      [] as string[],
    )
    .option('--no-site-tools', 'carry no site tools (the site brings its own sealift, helm and helmfile)')
    .option(
      '--sign-key <key>',
      "sign checksums.sha256 with this ECDSA P-256 private key (PEM, or cosign's encrypted cosign.key with COSIGN_PASSWORD): checksums.sha256.sig in cosign sign-blob format",
    )
    .option(
      '--no-referrers',
      "leave out what refers to the images (OCI 1.1 referrers, cosign's sha256-<hex>.sig/.att/.sbom): signatures, attestations, SBOMs",
    )
    .option(
      '--since <base>',
      'an incremental bundle: carry only the manifests and blobs the site lacks, by a site receipt (load --receipt), a previous bundle (.tar, .part-000, directory) or its bundle.json; site files always, site tools only when changed',
    );
  withPlatformFlags(cmd, 'linux/amd64, the site platform; the lock in the bundle records the digest kept');
  withCommonFlags(withTransportFlags(cmd)).action(async (flags: BundleFlags) => {
    const out = createOutput(flags);
    const { createBundle, parseSize, COMPRESSIONS } = await import('../bundle/index.ts');
    const { parsePlatform } = await import('../oci/types.ts');
    const { closeRegistryConnections } = await import('../oci/registry.ts');
    const concurrency = parseConcurrency(flags.concurrency);
    const sitePlatforms = await sitePlatformsFrom(flags);
    // the key before any pull: a wrong key or password fails now, not after the long part
    const signKey = flags.signKey ? await signingKeyFrom(flags.signKey) : undefined;
    try {
      const result = await interruptible((signal) =>
        createBundle({
          outDir: flags.out,
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.env ? { env: flags.env, stackDir: stackDirFrom(flags.stack) } : {}),
          ...overlaysFrom(flags.overlay),
          ...(flags.imagelists ? { imagelistsDir: flags.imagelists } : {}),
          ...(flags.imagelist ? { imagelist: flags.imagelist } : {}),
          platforms: platformSelectionFrom(flags, parsePlatform, {
            kind: 'only',
            platforms: [parsePlatform('linux/amd64')],
          }),
          concurrency,
          ...(flags.splitSize ? { splitSize: parseSize(flags.splitSize) } : {}),
          ...compressionFrom(flags, COMPRESSIONS),
          ...(flags.keepWork ? { keepWork: true } : {}),
          ...(flags.pack === false ? { noPack: true } : {}),
          sitePlatforms,
          ...(signKey ? { signKey } : {}),
          ...(flags.referrers === false ? { referrers: false } : {}),
          ...(flags.since ? { since: flags.since } : {}),
          registry: { hosts: registryHostsFromFlags(flags) },
          onEvent: out.onEvent,
          signal,
        }),
      );
      out.result(result, summary);
    } finally {
      out.close();
      await closeRegistryConnections();
    }
  });

  const verify = new Command('verify')
    .description('Re-hash a bundle (.tar, .tar.gz, .tar.part-000 or directory) and name every file that differs.')
    .argument('<bundle>', 'the bundle')
    .option(
      '--verify-key <pub>',
      'also refuse the bundle unless its checksums.sha256 is signed by this PEM public key (cosign.pub)',
    );
  withCommonFlags(verify).action(async (bundle: string) => {
    // --json / -q may be read by the parent `bundle` command: take them from either
    const flags = verify.optsWithGlobals<GlobalFlags & { verifyKey?: string }>();
    const out = createOutput(flags);
    const { verifyBundle } = await import('../bundle/index.ts');
    try {
      const r = await verifyBundle(bundle, {
        onEvent: out.onEvent,
        ...(flags.verifyKey ? { verifyKey: flags.verifyKey } : {}),
      });
      out.result(r, (v: BundleVerifyResult) => [
        `${v.bundle}: OK: ${v.files} files (${formatBytes(v.bytes)}), ${v.images} images${v.parts > 1 ? `, ${v.parts} parts` : ''} match their checksums`,
        originLine(v.signature),
        ...(v.base
          ? [
              `incremental: ${v.base.absent} manifests and blobs (${formatBytes(v.base.absentBytes)}) are referenced but not carried: they are the base's (${v.base.name}, bundle.json ${v.base.identity.slice(0, 19)}); load checks them at the target before it pushes`,
            ]
          : []),
      ]);
    } finally {
      out.close();
    }
  });
  cmd.addCommand(verify);

  const sign = new Command('sign')
    .description(
      "Sign a bundle made before (.tar, .tar.part-000 or directory): checks it as load does, then writes checksums.sha256.sig (cosign sign-blob format) right after checksums.sha256, replacing an earlier signature. A tar is rewritten (temp files, fsync, rename: it needs the bundle's size free) and <name>.tar.sha256 written anew; signing at `bundle --sign-key` time costs nothing of this.",
    )
    .argument('<bundle>', 'the bundle')
    .requiredOption(
      '--key <key>',
      "ECDSA P-256 private key: PEM (PKCS#8 or EC), or cosign's encrypted cosign.key (password in COSIGN_PASSWORD)",
    );
  withCommonFlags(sign).action(async (bundle: string) => {
    const flags = sign.optsWithGlobals<GlobalFlags & { key: string }>();
    const out = createOutput(flags);
    const { signBundle } = await import('../bundle/index.ts');
    try {
      const key = await signingKeyFrom(flags.key);
      const r = await interruptible((signal) => signBundle(bundle, key, { onEvent: out.onEvent, signal }));
      out.result(r, (v: SignBundleResult) => [
        `${v.bundle}: signed with ${v.key} (public key ${v.fingerprint})${v.replaced ? ', replacing its earlier signature' : ''}`,
        ...v.files.map((f) => `wrote ${f.path} (${formatBytes(f.size)}) sha256 ${f.sha256}`),
        ...(v.checksumFile ? [`checksums of the bundle file(s): ${v.checksumFile}`] : []),
      ]);
    } finally {
      out.close();
    }
  });
  cmd.addCommand(sign);
  for (const sub of bundleInspectCommands()) cmd.addCommand(sub);
  program.addCommand(cmd);
}
