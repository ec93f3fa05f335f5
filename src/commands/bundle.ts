// `sealift bundle -e <env> | --imagelist FILE` and `sealift bundle verify <bundle>`:
// flags -> BundleOptions -> a summary.
import { Command } from 'commander';
import { SealiftError } from '../errors.ts';
import type { BundleResult, BundleVerifyResult, Compression } from '../bundle/index.ts';
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
  siteTools: boolean;
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
    r.index.siteTools
      ? `site tools for ${r.index.siteTools.platforms.join(', ')}: ${formatBytes(r.index.siteTools.files.reduce((n, f) => n + f.size, 0))} (bin/<os>-<arch>/: sealift, helm, helmfile, helm-diff)`
      : 'no site tools carried (--no-site-tools)',
  ];
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
    .option('--no-site-tools', 'carry no site tools (the site brings its own sealift, helm and helmfile)');
  withPlatformFlags(cmd, 'linux/amd64, the site platform; the lock in the bundle records the digest kept');
  withCommonFlags(withTransportFlags(cmd)).action(async (flags: BundleFlags) => {
    const out = createOutput(flags);
    const { createBundle, parseSize, COMPRESSIONS } = await import('../bundle/index.ts');
    const { parsePlatform } = await import('../oci/types.ts');
    const { closeRegistryConnections } = await import('../oci/registry.ts');
    const concurrency = parseConcurrency(flags.concurrency);
    const sitePlatforms = await sitePlatformsFrom(flags);
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
    .argument('<bundle>', 'the bundle');
  withCommonFlags(verify).action(async (bundle: string) => {
    // --json / -q may be read by the parent `bundle` command: take them from either
    const out = createOutput(verify.optsWithGlobals<GlobalFlags>());
    const { verifyBundle } = await import('../bundle/index.ts');
    try {
      const r = await verifyBundle(bundle, { onEvent: out.onEvent });
      out.result(
        r,
        (v: BundleVerifyResult) =>
          `${v.bundle}: OK: ${v.files} files (${formatBytes(v.bytes)}), ${v.images} images${v.parts > 1 ? `, ${v.parts} parts` : ''} match their checksums`,
      );
    } finally {
      out.close();
    }
  });
  cmd.addCommand(verify);
  for (const sub of bundleInspectCommands()) cmd.addCommand(sub);
  program.addCommand(cmd);
}
