// `sealift mirror (-e ENV | --imagelist FILE) --to HOST:PORT`: flags -> MirrorOptions -> a table.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { SealiftError } from '../errors.ts';
import type { MirrorResult } from '../load/mirror.ts';
import {
  collect,
  parseConcurrency,
  registryHostsFromFlags,
  siteRegistryFromFlags,
  platformSelectionFrom,
  stackDirFrom,
  withPlatformFlags,
  withTransportFlags,
  type PlatformFlags,
  type TransportFlags,
} from './flags.ts';
import { shardFrom } from '../load/shard.ts';
import { referrerLines, reportCopy } from './load.ts';
import { interruptible } from './interrupt.ts';
import { createOutput, withCommonFlags, type GlobalFlags } from './output.ts';

interface MirrorFlags extends GlobalFlags, TransportFlags, PlatformFlags {
  env?: string;
  stack?: string;
  imagelist?: string;
  to: string;
  scheme?: 'host-swap' | 'scoped';
  concurrency?: string;
  sourcePlainHttp?: string[];
  sourceInsecure?: string[];
  sourceCaFile?: string[];
  shard?: string;
  shards?: string;
  /** commander's --no-referrers */
  referrers?: boolean;
}

export function registerMirror(program: Command): void {
  const cmd = new Command('mirror')
    .description(
      'Copy images registry to registry (same engine and naming as load); incremental: what the target has is not copied again.',
    )
    .option('-e, --env <name>', 'the environment whose image lock (imagelists/<env>.lock.json) to mirror')
    .option('--stack <dir>', 'directory holding imagelists/ (default: current directory, else the sealift checkout)')
    .option('--imagelist <file>', 'a file with one image reference a line (or a .lock.json)')
    .requiredOption('--to <host:port>', 'the target registry')
    .addOption(
      new Option(
        '--scheme <scheme>',
        "target naming: host-swap (REG/istio/pilot) or scoped (REG/docker.io/istio/pilot); default: with -e the environment's registry.scheme, else host-swap",
      ).choices(['host-swap', 'scoped']),
    )
    .option('--concurrency <n>', 'blob transfers at once', '4')
    .option(
      '--shard <k/n>',
      "copy only shard K (from 0) of N: the list's repositories split N ways, balanced by the lock's sizes",
    )
    .option('--shards <n>', 'N shards, this one JOB_COMPLETION_INDEX (what a Kubernetes Indexed Job sets)')
    // the spellings from before one convention: the same as --plain-http HOST etc. naming a source
    .option('--source-plain-http <host>', 'the same as --plain-http HOST for a source registry', collect)
    .option('--source-insecure <host>', 'the same as --insecure HOST for a source registry', collect)
    .option('--source-ca-file <host=file>', 'the same as --ca-file HOST=FILE for a source registry', collect)
    .option(
      '--no-referrers',
      "leave out what refers to the images (OCI 1.1 referrers, cosign's sha256-<hex>.sig/.att/.sbom): signatures, attestations, SBOMs",
    );
  withPlatformFlags(cmd, "every platform: the exact graph the lock's digest names (mirror writes no lock)");
  withTransportFlags(cmd, '--to');
  withCommonFlags(cmd).action(async (flags: MirrorFlags) => {
    if (Boolean(flags.env) === Boolean(flags.imagelist)) {
      throw new SealiftError('USAGE', 'say what to mirror: -e <env> or --imagelist <file> (one of them)', {
        hint: 'e.g. sealift mirror -e airgap --to 10.61.3.31:35000 --plain-http',
      });
    }
    const shard = shardFrom({
      ...(flags.shard !== undefined ? { shard: flags.shard } : {}),
      ...(flags.shards !== undefined ? { shards: flags.shards } : {}),
      ...(process.env.JOB_COMPLETION_INDEX !== undefined ? { completionIndex: process.env.JOB_COMPLETION_INDEX } : {}),
    });
    const out = createOutput(flags);
    const { mirrorImages, readMirrorList } = await import('../load/mirror.ts');
    const { closeRegistryConnections } = await import('../oci/registry.ts');
    const { parsePlatform } = await import('../oci/types.ts');
    const from = flags.imagelist ?? join(stackDirFrom(flags.stack), 'imagelists', `${flags.env}.lock.json`);
    if (flags.env && !existsSync(from)) {
      const { requireEnvironment } = await import('../config/index.ts');
      await requireEnvironment(stackDirFrom(flags.stack), flags.env);
      throw new SealiftError('NOT_FOUND', `environment ${flags.env} has no image lock at ${from}`, {
        hint: `Run \`sealift images -e ${flags.env}\` to write it (or give --stack, or --imagelist FILE).`,
      });
    }
    // transport flags naming another host than --to are about a source
    const { others, ...to } = siteRegistryFromFlags(flags.to, flags, '--to', 'return');
    const sources = registryHostsFromFlags({
      plainHttp: [...others.plainHttp!, ...(flags.sourcePlainHttp ?? [])],
      insecure: [...others.insecure!, ...(flags.sourceInsecure ?? [])],
      caFile: [...others.caFile!, ...(flags.sourceCaFile ?? [])],
    });
    // the names mirror writes are the names the environment's values pull
    const environmentScheme = async (f: MirrorFlags) => {
      if (!f.env) return 'host-swap' as const;
      const { loadEnvironment } = await import('../config/index.ts');
      return (await loadEnvironment(stackDirFrom(f.stack), f.env)).registry?.scheme ?? 'host-swap';
    };
    try {
      const result = await interruptible(async (signal) =>
        mirrorImages({
          images: await readMirrorList(from),
          from,
          to,
          sources,
          scheme: flags.scheme ?? (await environmentScheme(flags)),
          concurrency: parseConcurrency(flags.concurrency),
          ...(shard ? { shard } : {}),
          platforms: platformSelectionFrom(flags, parsePlatform, { kind: 'all' }),
          ...(flags.referrers === false ? { referrers: false } : {}),
          onEvent: out.onEvent,
          signal,
        }),
      );
      reportCopy(out, result, (r: MirrorResult) => ({
        ...(r.shard
          ? { head: [`shard ${r.shard.index}/${r.shard.total}: ${r.shard.images} of ${r.shard.of} images`] }
          : {}),
        tail: referrerLines(r.referrers),
        done: `mirrored ${r.from} into ${r.registry}`,
      }));
    } finally {
      out.close();
      await closeRegistryConnections();
    }
  });
  program.addCommand(cmd);
}
