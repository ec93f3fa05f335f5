// `sealift add <chart>`: flags -> addRelease -> what was added and what its images do at the site.
import type { Command } from 'commander';
import { collect, rulesDirsFrom, rulesOption, stackDirFrom } from './flags.ts';
import { createOutput, withCommonFlags, type GlobalFlags } from './output.ts';

interface AddFlags extends GlobalFlags {
  version?: string;
  devel?: boolean;
  name?: string;
  namespace?: string;
  tier?: string;
  needs?: string;
  values?: string[];
  repo?: string;
  plainHttp?: boolean;
  writeKnobs?: boolean;
  stack?: string;
  rules?: string[];
  cacheDir?: string;
}

async function runAdd(chart: string, flags: AddFlags): Promise<void> {
  const out = createOutput(flags);
  const { resolve } = await import('node:path');
  const { addRelease } = await import('../add/index.ts');
  const needs = flags.needs
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const r = await addRelease({
    stackDir: stackDirFrom(flags.stack),
    chart,
    ...(flags.repo ? { repo: flags.repo } : {}),
    ...(flags.plainHttp ? { plainHttp: true } : {}),
    ...(flags.version ? { version: flags.version } : {}),
    ...(flags.devel ? { devel: true } : {}),
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
    ...(flags.tier ? { tier: flags.tier } : {}),
    ...(needs?.length ? { needs } : {}),
    ...(flags.values ? { valuesFiles: flags.values.map((f) => resolve(f)) } : {}),
    ...(flags.writeKnobs ? { writeKnobs: true } : {}),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    ...(await rulesDirsFrom(flags.rules)),
    onEvent: out.onEvent,
  });
  out.result({ ok: true, ...r }, (v) => [
    `added release ${v.release}: chart ${v.chart} ${v.version}${v.newest ? ' (the newest; pinned)' : ''} from source ${v.source.name}${v.source.added ? ' (new)' : ''} to ${v.file}`,
    ...(v.airgap
      ? v.images.map((i) =>
          i.knobless
            ? `  knob-less in ${v.airgap!.environment}: ${i.reference}: ${i.knobless}`
            : `  moved in ${v.airgap!.environment} (${v.airgap!.host}): ${i.reference} <- ${i.knobs.join(', ')}`,
        )
      : v.images.map((i) => `  image: ${i.reference}`)),
    flags.writeKnobs
      ? `  ${Object.keys(v.knobs).length} inferred knobs written as imageKnobs for review`
      : `  knobs are inferred at each \`sealift images -e <env>\` (--write-knobs writes them into the file)`,
  ]);
}

export function registerAdd(program: Command): void {
  withCommonFlags(
    program
      .command('add')
      .description(
        'Add a chart (oci://host/path/chart, a chart name with --repo, a chart directory or .tgz) as a release of environments/default.yaml, pinned and checked',
      )
      .argument(
        '<chart>',
        'oci://host/path/chart, the chart name with --repo URL, or a local chart directory or <name>-<version>.tgz (written relative to the stack dir)',
      )
      .option('--repo <url>', 'chart repository URL')
      .option('--plain-http', 'OCI chart registry over plain HTTP')
      .option(
        '--version <version>',
        'chart version (default: the newest, printed and pinned; OCI: the newest semver tag, v-prefixed ones too; local: its Chart.yaml)',
      )
      .option('--devel', 'the newest may be a prerelease (1.2.0-rc.1)')
      .option('--name <release>', 'release name (default: the chart name)')
      .option('-n, --namespace <ns>', 'namespace (default: the release name)')
      .option('--tier <tier>', 'the tier label (default: apps)')
      .option('--needs <a,b>', 'releases installed first (comma-separated names)')
      .option('-f, --values <file>', 'values file (repeatable), kept as the release values', collect)
      .option('--write-knobs', 'write the inferred image knobs into the file as imageKnobs, for review')
      .option('--stack <dir>', 'the directory holding environments/ (default: current directory, else the checkout)')
      .addOption(rulesOption())
      .option('--cache-dir <dir>', 'where pulled charts are kept'),
  ).action((chart: string, flags: AddFlags) => runAdd(chart, flags));
}
