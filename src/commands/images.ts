// `sealift images -e <env> [--check]` and `sealift images scan <target>`: flags -> stage options -> output.
// The stage code is imported when a command runs, so `--help` and other commands do not load it.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ERROR_CODES, SealiftError } from '../errors.ts';
import type { ReleaseImages, ResolveResult } from '../images/index.ts';
import type { ExcludedCandidate, Origin, SkippedDocument } from '../images/extract.ts';
import type { EventSink } from '../events.ts';
import {
  collect,
  overlayOption,
  overlaysFrom,
  parseConcurrency,
  rulesDirsFrom,
  rulesOption,
  stackDirFrom,
} from './flags.ts';
import { createOutput, withCommonFlags, type GlobalFlags } from './output.ts';

interface ImagesFlags extends GlobalFlags {
  env?: string;
  check?: boolean;
  stack?: string;
  out?: string;
  rules?: string[];
  overlay?: string[];
  cacheDir?: string;
  concurrency?: string;
  explain?: boolean;
  all?: boolean;
  sizesFrom?: string[];
}

interface ScanFlags extends GlobalFlags {
  values?: string[];
  set?: string[];
  version?: string;
  repo?: string;
  plainHttp?: boolean;
  name?: string;
  namespace?: string;
  kubeVersion?: string;
  rules?: string[];
  explain?: boolean;
  airgapValues?: string;
  scheme?: string;
}

function summary(r: ReleaseImages) {
  return {
    release: r.release,
    from: r.from,
    images: r.images,
    excluded: r.excluded.length,
    knobless: [...new Set(r.findings.filter((f) => f.knobless).map((f) => f.reference))],
    warnings: r.warnings,
    durationMs: r.durationMs,
    ...(r.helmMs !== undefined ? { helmMs: r.helmMs } : {}),
  };
}

interface EnvOutcome {
  value: Record<string, unknown> & { ok: boolean };
  lines: string[];
}

async function runImages(flags: ImagesFlags): Promise<void> {
  const out = createOutput(flags);
  if (!flags.env && !flags.all)
    throw new SealiftError('USAGE', 'sealift images needs -e <env>, --all, or the scan subcommand', {
      hint: 'e.g. sealift images -e airgap, sealift images --all --check, or sealift images scan ./chart.tgz',
    });
  if (flags.env && flags.all) throw new SealiftError('USAGE', '-e and --all exclude each other');
  const stackDir = stackDirFrom(flags.stack);
  const { listEnvironments } = await import('../config/index.ts');
  const envs = flags.all ? await listEnvironments(stackDir) : [flags.env!];
  const outcomes: EnvOutcome[] = [];
  for (const env of envs) outcomes.push(await imagesForEnvironment(flags, stackDir, env, out.onEvent));
  const ok = outcomes.every((o) => o.value.ok);
  if (flags.all) out.result({ ok, environments: outcomes.map((o) => o.value) }, () => outcomes.flatMap((o) => o.lines));
  else out.result(outcomes[0]!.value, () => outcomes[0]!.lines);
  if (!ok) process.exitCode = ERROR_CODES.IMAGES_CHANGED.exit;
}

async function imagesForEnvironment(
  flags: ImagesFlags,
  stackDir: string,
  env: string,
  onEvent: EventSink,
): Promise<EnvOutcome> {
  const { formatOrigin, imageListFiles, readImageLock, resolveImages } = await import('../images/index.ts');
  const { diffImageLists, formatDifferences, lockPath, readCommitted, writeImageLists } =
    await import('../images/lock.ts');
  const { pathExists } = await import('../fs-atomic.ts');
  const outDir = resolve(flags.out ?? resolve(stackDir, 'imagelists'));
  const previousPath = lockPath(outDir, env);
  const previousLock = (await pathExists(previousPath))
    ? await readImageLock(previousPath).catch(() => undefined)
    : undefined;
  const concurrency = parseConcurrency(flags.concurrency);
  const knownSizes = flags.sizesFrom?.length ? await sizesFromBundles(flags.sizesFrom) : undefined;
  const result: ResolveResult = await resolveImages({
    stackDir,
    env,
    ...(await rulesDirsFrom(flags.rules)),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    ...overlaysFrom(flags.overlay),
    ...(concurrency ? { concurrency } : {}),
    ...(previousLock ? { previousLock } : {}),
    ...(knownSizes ? { knownSizes } : {}),
    onEvent,
  });
  const files = imageListFiles(result, stackDir);
  const releases = result.releases.map(summary);
  const total = result.lock.images.length;
  if (flags.check) {
    const diffs = diffImageLists(await readCommitted(outDir, env), files, outDir, env);
    const ok = diffs.length === 0;
    return {
      value: { ok, environment: result.environment, images: total, differences: diffs, releases },
      lines: ok
        ? [`imagelists for ${result.environment} are up to date (${total} images)`]
        : [
            ...formatDifferences(diffs),
            `imagelists for ${result.environment} differ from what rendering gives now: run \`sealift images -e ${result.environment}\` and commit the result`,
          ],
    };
  }
  const { written, unchanged } = await writeImageLists(outDir, env, files);
  for (const p of written) onEvent({ type: 'file', action: 'written', path: p });
  const knobless = result.lock.images.filter((e) => e.knobless);
  return {
    value: {
      ok: true,
      environment: result.environment,
      images: total,
      // images whose size the lock records (mirror --shard balances by size once all have one)
      sized: result.lock.images.filter((e) => e.size !== undefined).length,
      written,
      unchanged,
      releases: flags.explain
        ? releases.map((r, i) => ({
            ...r,
            excluded: result.releases[i]!.excluded,
            skipped: result.releases[i]!.skipped,
          }))
        : releases,
      timing: result.timing,
    },
    lines: [
      ...releases.map((r) => `${r.release.padEnd(24)} ${String(r.images.length).padStart(3)} images  (${r.from})`),
      ...(flags.explain ? result.releases.flatMap((r) => explainLines(r.excluded, r.skipped, formatOrigin)) : []),
      // which knob moves each image into the registry (the lock's why-trail says the same per occurrence)
      ...(flags.explain && result.lock.knobs
        ? result.lock.images.map((e) => {
            const knobs = [...new Set(e.why.map((w) => ('knob' in w ? w.knob : undefined)).filter(Boolean))];
            return knobs.length
              ? `knob: ${e.reference} <- ${knobs.join(', ')}`
              : `knob-less: ${e.reference}${e.knobless ? `: ${e.knobless.description}` : ''}`;
          })
        : []),
      ...knobless.map(
        (e) => `note: ${e.reference} has no values knob (${e.knobless!.rule}); verify reports it as a warning`,
      ),
      `${total} images for ${result.environment}: ${written.length} files written, ${unchanged.length} unchanged (${result.timing.totalMs} ms)`,
    ],
  };
}

/** `--sizes-from BUNDLE ...`: the images' sizes as the bundles record them, a later bundle's winning. */
async function sizesFromBundles(bundles: readonly string[]): Promise<Map<string, number>> {
  const { bundleImageSizes } = await import('../bundle/inspect.ts');
  const sizes = new Map<string, number>();
  for (const b of bundles) for (const [ref, size] of await bundleImageSizes(resolve(b))) sizes.set(ref, size);
  return sizes;
}

/** Every candidate not taken for an image, with the reason; every document not read. */
function explainLines(
  excluded: readonly ExcludedCandidate[],
  skipped: readonly SkippedDocument[],
  formatOrigin: (o: Origin) => string,
): string[] {
  return [
    ...excluded.map((x) => `not listed: ${x.value}  <- ${formatOrigin(x.origin)}: ${x.reason}`),
    ...skipped.map((s) => `skipped: ${s.release}: ${s.kind} ${s.name}: ${s.reason}`),
  ];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** scan renders for the stack's Kubernetes version (environments/default.yaml) unless told otherwise. */
async function defaultKubeVersion(): Promise<string | undefined> {
  const text = await readFile(join(stackDirFrom(undefined), 'environments', 'default.yaml'), 'utf8').catch(() => '');
  const { parse } = await import('yaml');
  const v = (parse(text) as { kubeVersion?: unknown } | null)?.kubeVersion;
  return typeof v === 'string' ? v : undefined;
}

async function runScan(target: string, flags: ScanFlags): Promise<void> {
  const out = createOutput(flags);
  const { formatOrigin, scanTarget } = await import('../images/index.ts');
  const kubeVersion = flags.kubeVersion ?? (await defaultKubeVersion());
  const airgap = flags.airgapValues !== undefined ? await airgapTarget(flags) : undefined;
  if (flags.scheme !== undefined && !airgap)
    throw new SealiftError('USAGE', '--scheme goes with --airgap-values', {
      hint: 'e.g. sealift images scan ./chart.tgz --airgap-values 10.61.3.31:35000 --scheme scoped',
    });
  const r = await scanTarget({
    ...(airgap ? { airgap } : {}),
    target,
    ...(target === '-' ? { text: await readStdin() } : {}),
    ...(flags.values ? { valuesFiles: flags.values.map((f) => resolve(f)) } : {}),
    ...(flags.set ? { set: flags.set } : {}),
    ...(flags.version ? { version: flags.version } : {}),
    ...(flags.repo ? { repo: flags.repo } : {}),
    ...(flags.plainHttp ? { plainHttp: true } : {}),
    ...(flags.name ? { release: flags.name } : {}),
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
    ...(kubeVersion ? { kubeVersion } : {}),
    ...(await rulesDirsFrom(flags.rules)),
    onEvent: out.onEvent,
  });
  const images = r.images.map((reference) => {
    const hits = r.findings.filter((f) => f.reference === reference);
    const knobless = hits.find((f) => f.knobless)?.knobless;
    const knobs = [...new Set(hits.map((f) => f.origin.knob).filter((k): k is string => k !== undefined))];
    return {
      reference,
      why: hits.map((f) => f.origin),
      ...(airgap ? { knobs } : {}),
      ...(knobless ? { knobless } : {}),
    };
  });
  if (airgap && r.airgapValues) {
    const { airgapValuesYaml, hostsTomlFallback } = await import('../images/knobs.ts');
    const knobless = images.filter((i) => i.knobless).map((i) => i.reference);
    const reason = (i: (typeof images)[number]) =>
      i.knobless!.description.includes('hosts.toml')
        ? i.knobless!.description
        : `${i.knobless!.description.replace(/\.$/, '')}; ${hostsTomlFallback(i.reference)}`;
    out.result(
      {
        ok: true,
        target,
        from: r.from,
        registry: airgap.host,
        scheme: airgap.scheme,
        values: r.airgapValues,
        knobs: r.knobs!.knobs,
        knobless,
        images: images.map((i) => (i.knobless ? { ...i, knobless: { ...i.knobless, description: reason(i) } } : i)),
        renders: r.knobs!.renders,
        warnings: r.warnings,
      },
      () => [
        airgapValuesYaml(r.airgapValues!, {
          target,
          host: airgap.host,
          scheme: airgap.scheme,
          moved: images.filter((i) => !i.knobless).map((i) => `${i.reference} <- ${(i.knobs ?? []).join(', ')}`),
          knobless: images.filter((i) => i.knobless).map((i) => `${i.reference}: ${reason(i)}`),
          valueRules: r.knobs!.valueRules,
          lists: Object.keys(r.knobs!.lists).filter((at) => !at.includes('[')),
        }).trimEnd(),
      ],
    );
    return;
  }
  out.result(
    { ok: true, target, from: r.from, images, excluded: r.excluded, skipped: r.skipped, warnings: r.warnings },
    (v) => {
      const lines: string[] = [];
      for (const i of v.images) {
        lines.push(i.reference);
        if (!flags.quiet) for (const w of i.why) lines.push(`    <- ${formatOrigin(w)}`);
        if (i.knobless && !flags.quiet) lines.push(`    knob-less: ${i.knobless.description}`);
      }
      if (flags.explain) {
        lines.push(...explainLines(v.excluded, v.skipped, formatOrigin));
      } else if (!flags.quiet && v.excluded.length > 0) {
        lines.push(`(${v.excluded.length} candidates not listed; --explain shows them with the reason)`);
      }
      return lines;
    },
  );
}

/** `--airgap-values HOST[:PORT]` and `--scheme`, checked before anything renders. */
async function airgapTarget(flags: ScanFlags): Promise<{ host: string; scheme: 'host-swap' | 'scoped' }> {
  const { parseNamingScheme } = await import('../oci/naming.ts');
  const host = flags.airgapValues!;
  if (!/^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d+)?$/.test(host))
    throw new SealiftError('USAGE', `--airgap-values must be HOST[:PORT] of the site registry, not "${host}"`, {
      hint: 'e.g. --airgap-values 10.61.3.31:35000 (no scheme, no path)',
    });
  return { host, scheme: parseNamingScheme(flags.scheme) };
}

/** The flags of every command that renders an environment (images, verify). */
export function withStageFlags(cmd: Command): Command {
  return cmd
    .option(
      '--stack <dir>',
      'the directory holding environments/ and imagelists/ (default: current directory, else the sealift checkout)',
    )
    .addOption(rulesOption())
    .addOption(overlayOption())
    .option('--cache-dir <dir>', 'where pulled charts are kept (default $SEALIFT_CACHE_DIR or ~/.cache/sealift)');
}

export function registerImages(program: Command): void {
  // `images scan x --version V --json`: options after a subcommand are the subcommand's (not the
  // program's --version, not the parent's --json)
  program.enablePositionalOptions();
  const images = withCommonFlags(
    withStageFlags(
      program
        .command('images')
        .description('Resolve every image an environment pulls into imagelists/<env>/ and imagelists/<env>.lock.json')
        .option('-e, --env <env>', 'the environment (environments/<env>.yaml)')
        .option('--all', 'every environment in environments/ (except default)')
        .option(
          '--check',
          'write nothing; exit 7 with a diff when the committed lists differ from what rendering gives now',
        )
        .option('-o, --out <dir>', 'where the lists go (default <stack>/imagelists)')
        .option('--concurrency <n>', 'helm processes at once (default 4)')
        .option('--explain', 'also list every candidate that was not taken for an image, with the reason')
        .option(
          '--sizes-from <bundle>',
          "write each image's size (bytes of its blobs) from a previous bundle into the lock, for mirror --shard to balance by (repeatable; sizes already in the lock are kept)",
          collect,
        )
        .enablePositionalOptions(),
    ),
  ).action((flags: ImagesFlags) => runImages(flags));

  withCommonFlags(
    images
      .command('scan')
      .description(
        'List the images of one chart (dir, .tgz, repo/chart, oci://...) or manifest file/dir, with where each comes from',
      )
      .argument(
        '<target>',
        'chart directory, .tgz, oci://host/path/chart, repo/chart (with --repo: the chart name), manifest file/directory/URL, or - for manifests on stdin',
      )
      .option('-f, --values <file>', 'values file (repeatable)', collect)
      .option('--set <key=value>', 'set a value (repeatable)', collect)
      .option('--version <version>', 'chart version')
      .option('--repo <url>', 'chart repository URL')
      .option('--plain-http', 'OCI chart registry over plain HTTP')
      .option('--name <release>', 'release name to render with')
      .option('-n, --namespace <ns>', 'namespace to render into')
      .option(
        '--kube-version <version>',
        'Kubernetes version to render for (default: kubeVersion of environments/default.yaml)',
      )
      .addOption(rulesOption())
      .option('--explain', 'also list every candidate that was not taken for an image, with the reason')
      .option(
        '--airgap-values <host[:port]>',
        "print a values file that moves every image of the chart into this registry (passed to helm after the user's values); knob-less images are listed in its comments",
      )
      .option('--scheme <scheme>', 'with --airgap-values: host-swap (default) or scoped naming in the registry'),
  ).action((target: string, flags: ScanFlags) => runScan(target, flags));
}
