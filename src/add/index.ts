// `sealift add`: a chart from a Helm repository or an OCI registry becomes a release of the stack
// (environments/default.yaml), edited through the yaml Document API so comments and key order
// stay. The version is pinned (the newest, as helm resolves it, when none is given); the chart is
// rendered and its images are reported moved or knob-less for the environment with a registry.
// Everything is checked before the file is written once (atomically): a failure leaves it as it was.
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { EnvironmentFileSchema, listEnvironments, loadEnvironment } from '../config/index.ts';
import { isPlainObject, mergeDeep } from '../config/merge.ts';
import { isSealiftError, SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { scanTarget, type ScanResult } from '../images/index.ts';
import type { NamingScheme } from '../oci/naming.ts';
import { helmShowChart } from '../render/helm.ts';
import { fetchChart } from '../render/index.ts';
import { parseYamlGo } from '../render/manifests.ts';

export interface AddOptions extends RunOptions {
  stackDir: string;
  /** `oci://host/path/chart`, or a chart name with `repo` */
  chart: string;
  repo?: string;
  plainHttp?: boolean;
  version?: string;
  name?: string;
  namespace?: string;
  tier?: string;
  needs?: string[];
  valuesFiles?: string[];
  /** write the inferred knobs as imageKnobs (for review) instead of inferring them at each run */
  writeKnobs?: boolean;
  cacheDir?: string;
  rulesDirs?: string[];
}

export interface AddResult {
  file: string;
  release: string;
  chart: string;
  version: string;
  /** true when no --version was given and the newest was taken */
  newest: boolean;
  source: { name: string; type: 'repo' | 'oci'; url: string; added: boolean };
  /** the environment the images were reported for (its registry), if any has one */
  airgap?: { environment: string; host: string; scheme: NamingScheme };
  images: { reference: string; knobs: string[]; knobless?: string }[];
  knobs: Record<string, string>;
}

const DNS = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function dnsLabel(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 53) || 'chart'
  );
}

/** Where the chart comes from, as a source entry of the environment file. */
function sourceOf(o: AddOptions): { type: 'repo' | 'oci'; url: string; chart: string; plainHttp: boolean } {
  if (o.chart.startsWith('oci://')) {
    const i = o.chart.lastIndexOf('/');
    const chart = o.chart.slice(i + 1);
    if (!chart || i <= 'oci://'.length)
      throw new SealiftError('USAGE', `"${o.chart}" is not oci://host/path/chart`, {
        hint: 'e.g. sealift add oci://ghcr.io/kserve/charts/kserve',
      });
    return { type: 'oci', url: o.chart.slice(0, i), chart, plainHttp: o.plainHttp === true };
  }
  if (o.repo) return { type: 'repo', url: o.repo.replace(/\/+$/, ''), chart: o.chart, plainHttp: false };
  throw new SealiftError('USAGE', `sealift add takes a chart from a repository or an OCI registry, not "${o.chart}"`, {
    hint: 'Give oci://host/path/chart, or --repo URL and the chart name. A local chart directory or .tgz has no source the site helmfile could name: publish it to a chart repository (or an OCI registry) first.',
  });
}

export async function addRelease(o: AddOptions): Promise<AddResult> {
  const onEvent = o.onEvent ?? noEvents;
  const file = join(o.stackDir, 'environments', 'default.yaml');
  const shown = relative(process.cwd(), file) || file;
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new SealiftError('CONFIG_INVALID', `${shown}: ${doc.errors[0]!.message.split('\n')[0]}`, {
      hint: 'Fix the YAML syntax first.',
    });
  const data = (doc.toJS() ?? {}) as {
    releases?: Record<string, unknown>;
    sources?: Record<string, { type?: string; url?: string }>;
    kubeVersion?: string;
  };
  const releases = data.releases ?? {};
  const src = sourceOf(o);
  const name = o.name ?? dnsLabel(src.chart);
  if (!DNS.test(name))
    throw new SealiftError('USAGE', `--name "${name}" is not a lower-case DNS label`, {
      hint: 'Use a-z, 0-9 and -.',
    });
  if (name in releases)
    throw new SealiftError('CONFIG_INVALID', `${shown}: release "${name}" exists already`, {
      hint: 'Give the new release another name with --name, or edit the existing one.',
      details: { release: name },
    });
  for (const n of o.needs ?? [])
    if (!(n in releases))
      throw new SealiftError('CONFIG_INVALID', `--needs names "${n}", which is not a release of ${shown}`, {
        hint: `Known releases: ${Object.keys(releases).join(', ')}.`,
        details: { needs: n },
      });

  // the version: given (checked to exist) or the newest, as helm resolves it
  const chartRef = src.type === 'oci' ? `${src.url}/${src.chart}` : src.chart;
  const shown_ = await helmShowChart({
    chart: chartRef,
    ...(o.version ? { version: o.version } : {}),
    ...(src.type === 'repo' ? { repo: src.url } : {}),
    ...(src.plainHttp ? { plainHttp: true } : {}),
  }).catch((e: unknown) => {
    if (!isSealiftError(e) || o.version || src.type !== 'oci') throw e;
    // helm picks the newest OCI tag among strict semver tags only: `v1.16.1` is not one
    throw new SealiftError(e.code, e.message, {
      hint: 'helm resolves the newest version of an OCI chart only among tags that are strict semver (no leading "v"); give it with --version.',
      cause: e,
      ...(e.details ? { details: e.details } : {}),
    });
  });
  const version = o.version ?? shown_.version;

  // the source: an existing one with the same URL, or a new one named after its host and path
  const sources = data.sources ?? {};
  let sourceName = Object.entries(sources).find(
    ([, s]) => s.type === src.type && (s.url ?? '').replace(/\/+$/, '') === src.url,
  )?.[0];
  const addedSource = sourceName === undefined;
  if (!sourceName) {
    const base = dnsLabel(src.url.replace(/^[a-z]+:\/\//, '').replace(/[:/.]+/g, '-'));
    sourceName = base;
    for (let i = 2; sourceName in sources; i++) sourceName = `${base}-${i}`;
  }

  // the values from -f, in order
  let values: Record<string, unknown> = {};
  for (const f of o.valuesFiles ?? []) {
    const v = parseYamlGo(await readFile(f, 'utf8'));
    if (v !== null && v !== undefined && !isPlainObject(v))
      throw new SealiftError('USAGE', `${f} is not a mapping of values`, { hint: 'A values file is a YAML mapping.' });
    if (v) values = mergeDeep(values, v);
  }

  // render it with the stack's Kubernetes version, and infer its knobs for the airgap environment
  const airgap = await airgapEnvironment(o.stackDir);
  const tgz = await fetchChart(
    src.type === 'oci'
      ? { type: 'oci', url: chartRef, version, plainHttp: src.plainHttp }
      : { type: 'repo', repoUrl: src.url, chart: src.chart, version },
    { ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), ...(o.signal ? { signal: o.signal } : {}) },
  );
  const scan: ScanResult = await scanTarget({
    target: tgz,
    release: name,
    namespace: o.namespace ?? name,
    ...(o.valuesFiles?.length ? { valuesFiles: o.valuesFiles } : {}),
    ...(typeof data.kubeVersion === 'string' ? { kubeVersion: data.kubeVersion } : {}),
    ...(o.rulesDirs ? { rulesDirs: o.rulesDirs } : {}),
    airgap: airgap ?? { host: 'site.invalid:5000', scheme: 'host-swap' },
    onEvent,
  });
  const inferred = scan.knobs!;
  const knobs = Object.fromEntries(inferred.knobs.map((k) => [k.path, k.upstream]));

  // the edit: a new release (and source) at the end of their mappings; comments elsewhere untouched
  const release: Record<string, unknown> = {
    namespace: o.namespace ?? name,
    tier: o.tier ?? 'apps',
    ...(o.needs?.length ? { needs: o.needs } : {}),
    chart: { source: sourceName, name: src.chart, version },
    ...(Object.keys(values).length ? { values } : {}),
    ...(o.writeKnobs && Object.keys(knobs).length ? { imageKnobs: knobs } : {}),
  };
  if (addedSource) {
    if (!isMap(doc.get('sources'))) doc.set('sources', doc.createNode({}));
    doc.setIn(
      ['sources', sourceName],
      doc.createNode({ type: src.type, url: src.url, ...(src.plainHttp ? { plainHttp: true } : {}) }),
    );
  }
  if (!isMap(doc.get('releases'))) doc.set('releases', doc.createNode({}));
  const node = doc.createNode(release);
  node.spaceBefore = true;
  doc.setIn(['releases', name], node);
  const next = doc.toString({ lineWidth: 0 });
  const check = EnvironmentFileSchema.safeParse(parseDocument(next).toJS());
  if (!check.success)
    throw new SealiftError('INTERNAL', `the edited ${shown} does not validate: ${check.error.issues[0]!.message}`);
  await writeFileAtomic(file, next);
  onEvent({ type: 'file', action: 'written', path: file });
  return {
    file,
    release: name,
    chart: src.chart,
    version,
    newest: o.version === undefined,
    source: { name: sourceName, type: src.type, url: src.url, added: addedSource },
    ...(airgap ? { airgap } : {}),
    images: scan.images.map((reference) => {
      const hits = scan.findings.filter((f) => f.reference === reference);
      const knobless = hits.find((f) => f.knobless)?.knobless?.description;
      return {
        reference,
        knobs: [...new Set(hits.map((f) => f.origin.knob).filter((k): k is string => !!k))],
        ...(knobless ? { knobless } : {}),
      };
    }),
    knobs,
  };
}

/** The first environment with a registry: the one the images are reported for. */
async function airgapEnvironment(
  stackDir: string,
): Promise<{ environment: string; host: string; scheme: NamingScheme } | undefined> {
  for (const name of await listEnvironments(stackDir)) {
    const env = await loadEnvironment(stackDir, name);
    if (env.registry) return { environment: name, host: env.registry.host, scheme: env.registry.scheme };
  }
  return undefined;
}
