// `sealift add`: a chart from a Helm repository, an OCI registry or the disk (a chart directory or
// a helm-package .tgz, as a `local` source) becomes a release of the stack (environments/default.yaml).
// The new entries are appended as text, so every other byte of the file stays (the yaml Document
// API parses it and says where). The version is pinned: given, a local chart's own, or the newest
// (helm's for a repository; the newest semver tag for OCI, newest.ts). The chart is rendered and its
// images are reported moved or knob-less for the environment with a registry. Everything is checked
// before the file is written once (atomically): a failure leaves it as it was.
import { readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Document, isCollection, isMap, parseDocument, type Node, type YAMLMap } from 'yaml';
import { EnvironmentFileSchema, listEnvironments, loadEnvironment } from '../config/index.ts';
import { isPlainObject, mergeDeep } from '../config/merge.ts';
import { errorMessage, SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { readChartMetadata } from '../images/chart-values.ts';
import { scanTarget, type ScanResult } from '../images/index.ts';
import type { NamingScheme } from '../oci/naming.ts';
import { helmShowChart } from '../render/helm.ts';
import { fetchChart } from '../render/index.ts';
import { parseYamlGo } from '../render/manifests.ts';
import { newestOciVersion } from './newest.ts';

export interface AddOptions extends RunOptions {
  stackDir: string;
  /** `oci://host/path/chart`, a chart name with `repo`, or a chart directory or .tgz (a path) */
  chart: string;
  repo?: string;
  plainHttp?: boolean;
  version?: string;
  /** the newest may be a prerelease (helm's --devel) */
  devel?: boolean;
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
  /** true when no --version was given and the newest was taken (a local chart is its Chart.yaml's version) */
  newest: boolean;
  source: { name: string; type: 'repo' | 'oci' | 'local'; url: string; added: boolean };
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
type AddSource =
  | { type: 'repo' | 'oci'; url: string; chart: string; plainHttp: boolean }
  /** url as written (relative to the stack dir unless given absolute), chart: the entry under it */
  | { type: 'local'; url: string; chart: string; plainHttp: false; dir: string; path: string; version: string };

/** `./x`, `../x`, `/x`, `x.tgz`: a path, not a chart name (a repo chart name holds no "/"). */
const looksLikePath = (s: string) => /^(\.{1,2}(\/|$)|\/|~)/.test(s) || /\.tgz$/i.test(s);

async function sourceOf(o: AddOptions): Promise<AddSource> {
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
  const st = await stat(o.chart).catch(() => undefined);
  if (st || looksLikePath(o.chart)) return localSource(o, st);
  throw new SealiftError(
    'USAGE',
    `sealift add takes a chart from a repository, an OCI registry or a path, not "${o.chart}"`,
    {
      hint: 'Give oci://host/path/chart, --repo URL and the chart name, a chart directory or a .tgz made by helm package.',
    },
  );
}

/** A chart directory or .tgz on disk: a `local` source (its parent directory) and the entry in it. */
async function localSource(o: AddOptions, st: Stats | undefined): Promise<AddSource> {
  const path = resolve(o.chart);
  if (!st)
    throw new SealiftError('NOT_FOUND', `${o.chart}: no such chart directory or file`, {
      hint: 'Check the path (relative to the current directory).',
      details: { chart: o.chart },
    });
  const archive = st.isFile();
  if (archive && !/\.tgz$/i.test(path))
    throw new SealiftError('USAGE', `${o.chart} is a file but not a chart .tgz`, {
      hint: 'Give a chart directory (the one holding Chart.yaml) or the .tgz helm package writes.',
    });
  if (!archive && !(await stat(join(path, 'Chart.yaml')).catch(() => undefined))?.isFile())
    throw new SealiftError('USAGE', `${o.chart} is a directory without a Chart.yaml`, {
      hint: "Give the chart's own directory (the one holding Chart.yaml and templates/), or the .tgz helm package writes.",
      details: { chart: o.chart },
    });
  let meta: { name?: string; version?: string };
  try {
    meta = await readChartMetadata(path);
  } catch (e) {
    throw new SealiftError(
      'USAGE',
      `${o.chart} is not a readable chart ${archive ? 'archive' : 'directory'}: ${errorMessage(e)}`,
      {
        hint: archive
          ? 'Make it again with `helm package <chart dir>` (a gzip-compressed tar holding <name>/Chart.yaml), or give the chart directory.'
          : 'Fix its Chart.yaml (helm lint shows what is wrong).',
        details: { chart: o.chart },
        cause: e,
      },
    );
  }
  const chartYaml = archive ? `${o.chart} (its Chart.yaml)` : join(o.chart, 'Chart.yaml');
  if (!meta.name || !meta.version)
    throw new SealiftError('USAGE', `${chartYaml} has no ${meta.name ? 'version' : 'name'}`, {
      hint: archive
        ? 'Make the archive again with `helm package <chart dir>`.'
        : 'A chart needs name: and version: in Chart.yaml (helm lint checks it).',
    });
  if (o.version && o.version !== meta.version)
    throw new SealiftError('USAGE', `${chartYaml} says version ${meta.version}, not --version ${o.version}`, {
      hint: 'A local chart is the version its Chart.yaml says: leave out --version, or give that one.',
    });
  const dir = dirname(path);
  // how the plan finds a packaged local chart (generate/plan.ts): <dir>/<name>-<version>.tgz
  if (archive) {
    const want = `${meta.name}-${meta.version}.tgz`;
    if (basename(path) !== want)
      throw new SealiftError(
        'USAGE',
        `${o.chart} holds chart ${meta.name} ${meta.version}, so it must be named ${want}`,
        {
          hint: `A packaged local chart is found as <directory>/<name>-<version>.tgz, the name helm package gives it: rename it (mv ${o.chart} ${join(dirname(o.chart), want)}).`,
        },
      );
    if (await stat(join(dir, meta.name)).catch(() => undefined))
      throw new SealiftError(
        'USAGE',
        `${join(dirname(o.chart), meta.name)} exists beside ${o.chart}; sealift would take that directory instead`,
        {
          hint: 'Keep either the chart directory or its .tgz in that directory, or add the directory.',
        },
      );
  }
  const stackDir = resolve(o.stackDir);
  // written relative to the stack dir (where environments/ is), unless given as an absolute path
  const url = isAbsolute(o.chart) ? dir : relative(stackDir, dir).split('\\').join('/') || '.';
  return {
    type: 'local',
    url,
    chart: archive ? meta.name : basename(path),
    plainHttp: false,
    dir,
    path,
    version: meta.version,
  };
}

export async function addRelease(o: AddOptions): Promise<AddResult> {
  const onEvent = o.onEvent ?? noEvents;
  const file = join(o.stackDir, 'environments', 'default.yaml');
  const shown = relative(process.cwd(), file) || file;
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new SealiftError('CONFIG_INVALID', `cannot read ${shown}: ${errorMessage(e)}`, {
      hint: 'sealift add edits <stack>/environments/default.yaml: run it in the stack directory, or give --stack DIR.',
      details: { file: shown },
    });
  });
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
  const src = await sourceOf(o);
  const name = o.name ?? dnsLabel(src.type === 'local' ? src.chart.replace(/\.tgz$/, '') : src.chart);
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

  // the version: a local chart's own; given (checked to exist); or the newest
  const chartRef = src.type === 'oci' ? `${src.url}/${src.chart}` : src.chart;
  let version: string;
  if (src.type === 'local') version = src.version;
  else {
    // helm picks an OCI chart's newest only among strict semver tags (not `v1.16.1`): the registry's tag list does
    const wanted =
      o.version ??
      (src.type === 'oci'
        ? await newestOciVersion(chartRef, {
            plainHttp: src.plainHttp,
            ...(o.devel ? { devel: true } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
          })
        : undefined);
    const shownChart = await helmShowChart({
      chart: chartRef,
      ...(wanted ? { version: wanted } : {}),
      ...(src.type === 'repo' ? { repo: src.url } : {}),
      ...(src.plainHttp ? { plainHttp: true } : {}),
      ...(o.devel ? { devel: true } : {}),
    });
    version = wanted ?? shownChart.version;
  }

  // the source: an existing one with the same URL (or directory), or a new one named after it
  const sources = data.sources ?? {};
  const sameUrl = (s: { type?: string; url?: string }) =>
    s.type === src.type &&
    (src.type === 'local'
      ? resolve(o.stackDir, s.url ?? '') === src.dir
      : (s.url ?? '').replace(/\/+$/, '') === src.url);
  let sourceName = Object.entries(sources).find(([, s]) => sameUrl(s))?.[0];
  const addedSource = sourceName === undefined;
  if (!sourceName) {
    const base = dnsLabel(
      src.type === 'local' ? basename(src.dir) : src.url.replace(/^[a-z]+:\/\//, '').replace(/[:/.]+/g, '-'),
    );
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
  const tgz =
    src.type === 'local'
      ? src.path
      : await fetchChart(
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
  const sourceEntry = { type: src.type, url: src.url, ...(src.plainHttp ? { plainHttp: true } : {}) };
  const next = editedText(text, doc, addedSource ? { name: sourceName, value: sourceEntry } : undefined, {
    name,
    value: release,
  });
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
    newest: o.version === undefined && src.type !== 'local',
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

/**
 * The file with the new source and release appended to their mappings as text: every byte of the
 * file stays as it was (the yaml package's re-serialization would re-space flow collections, which
 * this file writes `{ a: b }` and `[a, b]` alike). The entries are written in the file's own style:
 * a blank line before a release, its chart as `{ source: .., name: .., version: .. }` and needs as `[a, b]`.
 */
function editedText(
  text: string,
  doc: Document.Parsed,
  source: { name: string; value: Record<string, unknown> } | undefined,
  release: { name: string; value: Record<string, unknown> },
): string {
  const entry = (e: { name: string; value: Record<string, unknown> }, flow: string[]) => {
    const d = new Document({ [e.name]: e.value });
    const map = d.get(e.name, true) as YAMLMap;
    for (const key of flow) {
      const n = map.get(key, true);
      if (isCollection(n)) n.flow = true;
    }
    return d.toString({ lineWidth: 0 }).replace(/^(\s*needs: )\[ (.*) \]$/m, '$1[$2]');
  };
  const nonEmptyMap = (key: string) => {
    const map = doc.get(key, true);
    return isMap(map) && map.items.length > 0;
  };
  const appendable = (key: string) => !doc.has(key) || (nonEmptyMap(key) && !(doc.get(key, true) as YAMLMap).flow);
  if (!appendable('releases') || (source && !appendable('sources'))) {
    // `releases: {}` and the like: nothing to append to as text, so the document is edited and re-written
    if (source) {
      if (!nonEmptyMap('sources')) doc.set('sources', doc.createNode({}));
      doc.setIn(['sources', source.name], doc.createNode(source.value));
    }
    if (!nonEmptyMap('releases')) doc.set('releases', doc.createNode({}));
    doc.setIn(['releases', release.name], doc.createNode(release.value));
    return doc.toString({ lineWidth: 0 });
  }
  const inserts: { at: number; text: string }[] = [];
  const plan = (key: string, body: string, blankBefore: boolean) => {
    const map = doc.get(key, true);
    if (!isMap(map)) {
      // no such mapping yet: a new one at the end of the file
      const tail = text.endsWith('\n') || text === '' ? '' : '\n';
      inserts.push({ at: text.length, text: `${tail}\n${key}:\n${indent(body, 2)}` });
      return;
    }
    const first = map.items[0]!.key as Node;
    const last = map.items.at(-1)!;
    const end = ((last.value as Node | null)?.range ?? (last.key as Node).range)![1];
    const lineStart = text.lastIndexOf('\n', first.range![0] - 1) + 1;
    const col = first.range![0] - lineStart;
    const nl = text[end - 1] === '\n' ? end - 1 : text.indexOf('\n', end);
    const at = nl === -1 ? text.length : nl + 1;
    inserts.push({ at, text: `${nl === -1 ? '\n' : ''}${blankBefore ? '\n' : ''}${indent(body, col)}` });
  };
  if (source) plan('sources', entry(source, []), false);
  plan('releases', entry(release, ['chart', 'needs']), true);
  let out = text;
  // from the end, so earlier offsets hold; at one offset (both new, at the end) the later one first
  const order = inserts.map((x, i) => ({ ...x, i })).sort((a, b) => b.at - a.at || b.i - a.i);
  for (const i of order) out = out.slice(0, i.at) + i.text + out.slice(i.at);
  return out;
}

const indent = (body: string, n: number) =>
  body
    .split('\n')
    .map((l) => (l ? ' '.repeat(n) + l : l))
    .join('\n');

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
