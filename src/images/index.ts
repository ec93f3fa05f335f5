// The images stage: render every release of an environment, extract every image the cluster will
// pull, apply the environment's extraImages/excludeImages, and produce the lists and the lock.
// Also `scanTarget` (one chart, archive, directory or manifest file) and, for verify,
// `renderDeployedImages` (the same, with the values the environment deploys).
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve } from 'node:path';
import type { Environment } from '../config/index.ts';
import { loadEnvironment } from '../config/index.ts';
import { SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import pLimit from 'p-limit';
import { mergeDeep, setPath } from '../config/merge.ts';
import {
  planReleases,
  type ChartSource,
  type InferredKnobs,
  type InferredValues,
  type PlanMode,
  type ReleasePlan,
} from '../generate/plan.ts';
import { helmShowChart, helmTemplateCoping } from '../render/helm.ts';
import { chartPath, fetchChart, fetchManifestFile, renderReleases, type RenderedRelease } from '../render/index.ts';
import { parseManifests, parseYamlGo, type ManifestProblem } from '../render/manifests.ts';
import {
  findImages,
  formatOrigin,
  IMAGELESS_KINDS,
  type ExcludedCandidate,
  type ExtractionProblem,
  type ImageFinding,
  type SkippedDocument,
} from './extract.ts';
import {
  renderListFile,
  renderLock,
  type ImageListFiles,
  type ImageLock,
  type ImageLockEntry,
  type Why,
} from './lock.ts';
import { formatImageReference, normalizeImageReference, withDefaultTag } from '../oci/reference.ts';
import { modelImageReference } from '../models/index.ts';
import { readChartValues } from './chart-values.ts';
import { airgapValues, hostsTomlFallback, inferKnobs, type KnobInference } from './knobs.ts';
import type { NamingScheme } from '../oci/naming.ts';
import { globToRegExp, loadRules, type RuleSet } from './rules.ts';

export type { KnobInference, InferredKnob } from './knobs.ts';

export { readImageLock } from './lock.ts';
export type { ImageLock, ImageLockEntry } from './lock.ts';

export interface ReleaseImages {
  release: string;
  chart?: string;
  /** what it was rendered from, for headers: `chart kserve v0.15.2`, `release files a.yaml, b.yaml` */
  from: string;
  /** sorted, deduplicated normalized references */
  images: string[];
  findings: ImageFinding[];
  excluded: ExcludedCandidate[];
  skipped: SkippedDocument[];
  /** bad documents (kept out, the rest extracted) and rules that did not resolve */
  warnings: string[];
  documents: number;
  durationMs: number;
  helmMs?: number;
}

export interface Timing {
  /** wall time of the whole resolve */
  totalMs: number;
  /** knob inference (sentinel renders) after the render, when the environment has a registry (part of totalMs) */
  knobsMs?: number;
  /** sum of the single `helm template` times, and the slowest one */
  sumHelmMs: number;
  maxHelmMs: number;
  slowestRelease?: string;
}

export interface ResolveResult {
  environment: string;
  envFile: string;
  releases: ReleaseImages[];
  lock: ImageLock;
  timing: Timing;
}

export interface StageOptions extends RunOptions {
  /** the directory holding environments/ (and templates/) */
  stackDir: string;
  /** rule directories (default: the project's rules/) */
  rulesDirs?: string[];
  cacheDir?: string;
  concurrency?: number;
  /** extra environment files merged last (loadEnvironment overlays) */
  overlays?: string[];
  /** deploy mode: knobs inferred earlier (the lock's `knobs`), mapped like the hand-written imageKnobs */
  inferredKnobs?: InferredKnobs;
  /** deploy mode: the lock's `knobValues` (values rules a release needs once its images move) */
  inferredValues?: InferredValues;
}

function describeSource(p: ReleasePlan): string {
  const s = p.source;
  if (s.type === 'repo') return `chart ${s.chart} ${s.version}`;
  if (s.type === 'oci') return `chart ${s.url.split('/').pop()} ${s.version}`;
  if (s.type === 'local') return `chart ${s.chart} ${s.version} (stack dir)`;
  return `release files ${s.files.map((f) => f.name).join(', ')}`;
}

function problemText(p: ManifestProblem | ExtractionProblem, release: string): string {
  if ('severity' in p) return `${release}: ${p.message}`;
  return `${release}: ${p.file ?? ''}${p.template ? ` (${p.template})` : ''} line ${p.line}: ${p.message}`;
}

/** Extraction over one rendered release; errors (malformed references in definite places) are collected. */
function extractRelease(r: RenderedRelease, from: string, rules: RuleSet, errors: string[]): ReleaseImages {
  const ex = findImages(r.documents, { release: r.release, ...(r.chart ? { chart: r.chart } : {}), rules });
  const warnings = [...r.problems.map((p) => problemText(p, r.release))];
  for (const p of ex.problems)
    (p.severity === 'error' ? errors : warnings).push(p.severity === 'error' ? p.message : problemText(p, r.release));
  return {
    release: r.release,
    ...(r.chart ? { chart: r.chart } : {}),
    from,
    images: [...new Set(ex.findings.map((f) => f.reference))].sort(),
    findings: ex.findings,
    excluded: ex.excluded,
    skipped: ex.skipped,
    warnings,
    documents: r.documents.length,
    durationMs: r.durationMs,
    ...(r.helmMs !== undefined ? { helmMs: r.helmMs } : {}),
  };
}

function throwIfErrors(errors: string[]): void {
  if (errors.length === 0) return;
  throw new SealiftError(
    'REF_INVALID',
    `${errors.length} malformed image reference${errors.length > 1 ? 's' : ''}:\n  ${errors.join('\n  ')}`,
    {
      hint: 'Fix the value where the chart or values set it, or drop the release; sealift lists only references it can pull.',
      details: { errors },
    },
  );
}

function timingOf(releases: ReleaseImages[], started: number): Timing {
  let sumHelmMs = 0;
  let maxHelmMs = 0;
  let slowestRelease: string | undefined;
  for (const r of releases) {
    const ms = r.helmMs ?? 0;
    sumHelmMs += ms;
    if (ms > maxHelmMs) {
      maxHelmMs = ms;
      slowestRelease = r.release;
    }
  }
  return { totalMs: Date.now() - started, sumHelmMs, maxHelmMs, ...(slowestRelease ? { slowestRelease } : {}) };
}

/** Renders the environment's releases in `mode` and extracts their images. */
async function renderAndExtract(
  env: Environment,
  mode: PlanMode,
  opts: StageOptions,
): Promise<{ releases: ReleaseImages[]; plans: ReleasePlan[]; rules: RuleSet; timing: Timing }> {
  const started = Date.now();
  const rules = await loadRules(opts.rulesDirs);
  const plans = planReleases(env, {
    mode,
    ...(opts.inferredKnobs ? { inferredKnobs: opts.inferredKnobs } : {}),
    ...(opts.inferredValues ? { inferredValues: opts.inferredValues } : {}),
  });
  const rendered = await renderReleases(plans, {
    kubeVersion: env.kubeVersion,
    apiVersions: env.apiVersions,
    skipKinds: IMAGELESS_KINDS,
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const errors: string[] = [];
  const releases = rendered.map((r, i) => extractRelease(r, describeSource(plans[i]!), rules, errors));
  throwIfErrors(errors);
  const onEvent = opts.onEvent ?? noEvents;
  for (const r of releases) for (const w of r.warnings) onEvent({ type: 'warn', message: w });
  return { releases, plans, rules, timing: timingOf(releases, started) };
}

/** extraImages are added as given, excludeImages (globs) take listed images out, both with a why. */
function applyEnvironmentLists(env: Environment, r: ReleaseImages): void {
  const cfg = env.releases[r.release];
  const file = relative(process.cwd(), env.file) || env.file;
  const extra: string[] = cfg?.extraImages ?? [];
  const exclude: string[] = cfg?.excludeImages ?? [];
  extra.forEach((ref, i) => {
    const path = `releases.${r.release}.extraImages[${i}]`;
    const normalized = formatImageReference(withDefaultTag(normalizeImageReference(ref, `${file}: ${path}`)));
    r.findings.push({
      reference: normalized,
      origin: { release: r.release, kind: 'Environment', name: basename(env.file), path, via: 'text' },
    });
  });
  const patterns = exclude.map((g, i) => ({
    re: globToRegExp(g),
    path: `releases.${r.release}.excludeImages[${i}]`,
    glob: g,
  }));
  r.findings = r.findings.filter((f) => {
    const p = patterns.find((x) => x.re.test(f.reference));
    if (!p) return true;
    r.excluded.push({ value: f.reference, origin: f.origin, reason: `excludeImages "${p.glob}" (${file}: ${p.path})` });
    return false;
  });
  r.images = [...new Set(r.findings.map((f) => f.reference))].sort();
}

/**
 * One lock entry per reference, with every release and every why. What is known of an image
 * carries over: the previous lock's digest, and its size (bytes of its blobs, what `mirror
 * --shard` balances by), `sizes` (e.g. read from a bundle) taking precedence over the previous lock.
 */
export function buildLock(
  environment: string,
  releases: readonly ReleaseImages[],
  previous?: ImageLock,
  sizes?: ReadonlyMap<string, number>,
): ImageLock {
  const byRef = new Map<string, ImageLockEntry>();
  const known = new Map((previous?.images ?? []).filter((e) => e.digest).map((e) => [e.reference, e.digest!]));
  const knownSize = new Map(
    (previous?.images ?? []).filter((e) => e.size !== undefined).map((e) => [e.reference, e.size!]),
  );
  for (const [ref, size] of sizes ?? []) knownSize.set(ref, size);
  for (const r of releases) {
    for (const f of r.findings) {
      let e = byRef.get(f.reference);
      if (!e) {
        e = { reference: f.reference, releases: [], why: [] };
        const digest = known.get(f.reference);
        if (digest) e.digest = digest;
        const size = knownSize.get(f.reference);
        if (size !== undefined) e.size = size;
        byRef.set(f.reference, e);
      }
      if (!e.releases.includes(r.release)) e.releases.push(r.release);
      const why: Why = f.origin.kind === 'Environment' ? { ...f.origin, kind: 'Environment', via: 'extra' } : f.origin;
      if (
        !e.why.some(
          (w) => w.release === why.release && w.kind === why.kind && w.name === why.name && w.path === why.path,
        )
      )
        e.why.push(why);
      if (f.knobless && !e.knobless) e.knobless = f.knobless;
    }
  }
  return { version: 1, environment, images: [...byRef.values()] };
}

/** Resolves every image the environment's releases pull, as upstream publishes them. */
export async function resolveImages(
  opts: StageOptions & {
    env: string;
    previousLock?: ImageLock;
    /** normalized reference -> bytes of its blobs, known from elsewhere (a bundle's bundle.json) */
    knownSizes?: ReadonlyMap<string, number>;
  },
): Promise<ResolveResult> {
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const { releases, plans, rules, timing } = await renderAndExtract(env, 'upstream', opts);
  const knobsStarted = Date.now();
  const knobs = env.registry ? await inferEnvironmentKnobs(env, plans, releases, rules, opts) : undefined;
  if (knobs) {
    timing.knobsMs = Date.now() - knobsStarted;
    timing.totalMs += timing.knobsMs; // the whole resolve, knob inference included
  }
  for (const r of releases) applyEnvironmentLists(env, r);
  const lock = buildLock(env.name, releases, opts.previousLock, opts.knownSizes);
  if (knobs) lock.knobs = knobs.knobs;
  if (knobs && Object.keys(knobs.values).length > 0) lock.knobValues = knobs.values;
  return { environment: env.name, envFile: env.file, releases, lock, timing };
}

/**
 * Knobs for every chart release of an environment with a registry (one sentinel render each, in
 * parallel), written into the findings: `origin.knob` names the values path that moves each
 * occurrence, and an image no knob moves is marked knob-less with the reason. Release files are
 * moved by their `manifests.images` prefixes. Returns the inferred knobs (hand ones excluded).
 */
async function inferEnvironmentKnobs(
  env: Environment,
  plans: readonly ReleasePlan[],
  releases: readonly ReleaseImages[],
  rules: RuleSet,
  opts: StageOptions,
): Promise<{ knobs: InferredKnobs; values: InferredValues }> {
  const onEvent = opts.onEvent ?? noEvents;
  const limit = pLimit(Math.max(1, opts.concurrency ?? 4));
  const out: InferredKnobs = {};
  const values: InferredValues = {};
  await Promise.all(
    plans.map((p, i) =>
      limit(async () => {
        const r = releases[i]!;
        const rel = env.releases[p.name]!;
        if (p.source.type === 'manifests') {
          const prefixes = rel.manifests!.images.map((x, j) => ({
            name: repositoryPrefix(x),
            knob: `manifests.images[${j}]`,
          }));
          for (const f of r.findings) {
            const hit = prefixes.find((x) => f.reference.startsWith(`${x.name}/`));
            if (hit) f.origin.knob = hit.knob;
          }
          markKnobless(r, (f) => `no manifests.images prefix of release ${p.name} matches it (${f.origin.path})`);
          return;
        }
        // model images are written by generate at the release's modelsKnob, not by a chart value
        if (rel.modelsKnob) {
          const models = new Set(
            env.models.map((m) => formatImageReference(normalizeImageReference(modelImageReference(m)))),
          );
          for (const f of r.findings) if (models.has(f.reference)) f.origin.knob = rel.modelsKnob;
        }
        if (r.findings.every((f) => f.origin.knob)) return;
        const started = Date.now();
        const tgz = await chartPath(undefined, p.source, {
          ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        const inference = await inferChartKnobs({
          release: p.name,
          namespace: p.namespace,
          chart: tgz,
          ...(r.chart ? { chartName: r.chart } : {}),
          values: [p.values],
          kubeVersion: env.kubeVersion,
          rules,
          findings: r.findings.filter((f) => !f.origin.knob),
          handKnobs: rel.imageKnobs,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        applyInference(r, inference);
        const inferred = inference.knobs.filter((k) => !k.hand);
        if (inferred.length > 0) out[p.name] = Object.fromEntries(inferred.map((k) => [k.path, k.upstream]));
        // the lists knobs go through, whole: generate changes their image fields in place (plan.ts)
        const carried = mergeDeep(inference.values, listValues(inference.lists));
        if (Object.keys(carried).length > 0) values[p.name] = carried;
        onEvent({
          type: 'info',
          message: `knobs of ${p.name}: ${inference.knobs.length} (${inferred.length} inferred), ${inference.knobless.length} knob-less image(s), ${inference.renders} sentinel render(s) in ${Date.now() - started} ms`,
          fields: { release: p.name, knobs: inference.knobs.length, knobless: inference.knobless.length },
        });
      }),
    ),
  );
  return { knobs: out, values };
}

/** Lists by path as a values tree (the outermost ones: an inner list is inside its outer one). */
function listValues(lists: Record<string, unknown[]>): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  for (const [at, list] of Object.entries(lists)) if (!at.includes('[')) out = setPath(out, at, list);
  return out;
}

function repositoryPrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  const ref = normalizeImageReference(`${trimmed}/x`);
  return `${ref.registry}/${ref.repository.slice(0, -2)}`;
}

function markKnobless(r: ReleaseImages, reason: (f: ImageFinding) => string): void {
  for (const f of r.findings) {
    if (f.origin.knob || f.knobless) continue;
    f.knobless = { rule: 'inferred', description: `${reason(f)}; ${hostsTomlFallback(f.reference)}` };
  }
}

/** Writes an inference into a release's findings: knobs on origins, knob-less reasons. */
export function applyInference(r: ReleaseImages, inference: KnobInference): void {
  const reasons = new Map(inference.knobless.map((k) => [k.reference, k.reason]));
  for (const f of r.findings) {
    const knob = inference.byOccurrence.get(occurrenceKeyOf(f));
    if (knob) f.origin.knob = knob;
  }
  markKnobless(r, (f) => reasons.get(f.reference) ?? 'no knob moves this occurrence');
}

const occurrenceKeyOf = (f: ImageFinding) =>
  `${f.origin.kind} ${f.origin.namespace ?? ''}/${f.origin.name} ${f.origin.path}`;

export interface ChartKnobOptions {
  release: string;
  namespace?: string;
  /** a local chart .tgz or directory */
  chart: string;
  chartName?: string;
  /** values objects, in order, after valuesFiles */
  values?: Record<string, unknown>[];
  valuesFiles?: string[];
  kubeVersion?: string;
  rules: RuleSet;
  /** what the render with these values found */
  findings: readonly ImageFinding[];
  handKnobs?: Record<string, string>;
  signal?: AbortSignal;
}

/** Knob inference for one chart: its coalesced values, the given values over them, one sentinel render. */
export async function inferChartKnobs(o: ChartKnobOptions): Promise<KnobInference> {
  let values = await readChartValues(o.chart);
  for (const f of o.valuesFiles ?? []) {
    const parsed = parseYamlGo(await readFile(f, 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      values = mergeDeep(values, parsed as Record<string, unknown>);
  }
  for (const v of o.values ?? []) values = mergeDeep(values, v);
  return inferKnobs({
    release: o.release,
    ...(o.chartName ? { chart: o.chartName } : {}),
    rules: o.rules,
    values,
    upstream: o.findings,
    ...(o.handKnobs ? { handKnobs: o.handKnobs } : {}),
    render: async (overlay) => {
      const r = await helmTemplateCoping({
        release: o.release,
        chart: o.chart,
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(o.valuesFiles ? { valuesFiles: o.valuesFiles } : {}),
        values: [...(o.values ?? []), overlay],
        ...(o.kubeVersion ? { kubeVersion: o.kubeVersion } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
      return parseManifests(r.stdout, o.chartName, { skipKinds: IMAGELESS_KINDS }).documents;
    },
  });
}

/** The files `sealift images` writes for a result. */
export function imageListFiles(result: ResolveResult, stackDir: string): ImageListFiles {
  const envFile = relative(stackDir, result.envFile) || result.envFile;
  const lists = new Map<string, string>();
  for (const r of result.releases) lists.set(`${r.release}.txt`, renderListFile(result.environment, r, envFile));
  return { lists, lock: renderLock(result.lock) };
}

export interface DeployedImage {
  reference: string;
  why: ImageFinding['origin'][];
  knobless?: { rule: string; description: string };
}

export interface DeployedImages {
  environment: string;
  images: DeployedImage[];
  releases: ReleaseImages[];
  timing: Timing;
}

/** Renders the environment as it will be deployed (airgap values) and lists what its pods pull. */
export async function renderDeployedImages(env: Environment, opts: StageOptions): Promise<DeployedImages> {
  const { releases, timing } = await renderAndExtract(env, 'deploy', opts);
  return { environment: env.name, images: deployedImages(releases), releases, timing };
}

function deployedImages(releases: readonly ReleaseImages[]): DeployedImage[] {
  const byRef = new Map<string, DeployedImage>();
  for (const r of releases) {
    for (const f of r.findings) {
      const d = byRef.get(f.reference) ?? { reference: f.reference, why: [] };
      d.why.push(f.origin);
      if (f.knobless) d.knobless = f.knobless;
      byRef.set(f.reference, d);
    }
  }
  return [...byRef.values()].sort((a, b) => (a.reference < b.reference ? -1 : 1));
}

/**
 * The same from manifests rendered elsewhere (e.g. `helmfile -e airgap template` at the site):
 * each file is one "release" named after the file.
 */
export async function manifestImages(
  environment: string,
  files: readonly string[],
  opts: Pick<StageOptions, 'rulesDirs' | 'onEvent'> = {},
): Promise<DeployedImages> {
  const started = Date.now();
  const rules = await loadRules(opts.rulesDirs);
  const errors: string[] = [];
  const releases: ReleaseImages[] = [];
  for (const f of files) {
    const text = await fetchManifestFile(resolve(f));
    const parsed = parseManifests(text, basename(f), { skipKinds: IMAGELESS_KINDS });
    releases.push(
      extractRelease(
        { release: basename(f), ...parsed, durationMs: Date.now() - started },
        `manifests ${f}`,
        rules,
        errors,
      ),
    );
  }
  throwIfErrors(errors);
  const onEvent = opts.onEvent ?? noEvents;
  for (const r of releases) for (const w of r.warnings) onEvent({ type: 'warn', message: w });
  return { environment, images: deployedImages(releases), releases, timing: timingOf(releases, started) };
}

// ---------------------------------------------------------------------------------------------
// scan: one chart (dir, .tgz, repo chart, oci://), a manifest file or a directory of them

export interface ScanOptions extends RunOptions {
  target: string;
  valuesFiles?: string[];
  set?: string[];
  version?: string;
  repo?: string;
  plainHttp?: boolean;
  release?: string;
  namespace?: string;
  kubeVersion?: string;
  rulesDirs?: string[];
  cacheDir?: string;
  /** with target `-`: the manifests themselves (what the CLI read from stdin) */
  text?: string;
  /** also infer the chart's image knobs (one sentinel render) and the values that move them here */
  airgap?: { host: string; scheme: NamingScheme };
}

export interface ScanResult extends ReleaseImages {
  /** with `airgap`: the inference and the values file that moves the chart's images */
  knobs?: KnobInference;
  airgapValues?: Record<string, unknown>;
}

async function isFile(p: string): Promise<'file' | 'dir' | undefined> {
  const s = await stat(p).catch(() => undefined);
  return s?.isFile() ? 'file' : s?.isDirectory() ? 'dir' : undefined;
}

async function yamlFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFilesUnder(p)));
    else if (/\.(ya?ml|json)$/.test(e.name)) out.push(p);
  }
  return out;
}

function releaseNameFor(target: string): string {
  const base = basename(target.replace(/\/+$/, ''))
    .replace(/\.tgz$/, '')
    .replace(/-v?\d+\.\d+.*$/, '');
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 53);
  return name || 'scan';
}

/** Scans one target; values and --set apply to charts only. */
export async function scanTarget(opts: ScanOptions): Promise<ScanResult> {
  const started = Date.now();
  const rules = await loadRules(opts.rulesDirs);
  const release = opts.release ?? (opts.target === '-' ? 'stdin' : releaseNameFor(opts.target));
  if (opts.target === '-') {
    const parsed = parseManifests(opts.text ?? '', '<stdin>', { skipKinds: IMAGELESS_KINDS });
    const errors: string[] = [];
    const result = extractRelease(
      { release, ...parsed, durationMs: Date.now() - started },
      'manifests on stdin',
      rules,
      errors,
    );
    throwIfErrors(errors);
    for (const w of result.warnings) (opts.onEvent ?? noEvents)({ type: 'warn', message: w });
    return result;
  }
  const local = await isFile(opts.target);
  let chartPath: string | undefined;
  let rendered: RenderedRelease;
  let from: string;
  const isManifestFile = local === 'file' && /\.(ya?ml|json)$/i.test(extname(opts.target));
  const isChartDir = local === 'dir' && (await isFile(join(opts.target, 'Chart.yaml'))) === 'file';
  if (
    isManifestFile ||
    (local === 'dir' && !isChartDir) ||
    (!local && /^https?:\/\/.*\.(ya?ml|json)$/i.test(opts.target))
  ) {
    const files = local === 'dir' ? await yamlFilesUnder(opts.target) : [opts.target];
    if (files.length === 0) {
      throw new SealiftError('USAGE', `${opts.target} holds no Chart.yaml and no *.yaml files`, {
        hint: 'Give a chart directory, a .tgz, a chart reference or manifest files.',
      });
    }
    const documents = [];
    const problems = [];
    for (const f of files) {
      const text = await fetchManifestFile(local ? resolve(f) : f, {
        ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const parsed = parseManifests(text, local === 'dir' ? relative(opts.target, f) : basename(f), {
        skipKinds: IMAGELESS_KINDS,
      });
      documents.push(...parsed.documents);
      problems.push(...parsed.problems);
    }
    rendered = { release, documents, problems, durationMs: Date.now() - started };
    from = `manifests ${opts.target}`;
  } else {
    if (!local && !opts.repo && (/^(\.{0,2}\/|~)/.test(opts.target) || /\.(tgz|ya?ml|json)$/.test(opts.target))) {
      throw new SealiftError('USAGE', `${opts.target} does not exist`, {
        hint: 'Give an existing chart directory, .tgz or manifest file, or a chart reference.',
      });
    }
    if (!local && !opts.target.startsWith('oci://') && !opts.repo && !opts.target.includes('/')) {
      throw new SealiftError(
        'USAGE',
        `"${opts.target}" is neither a file, a directory, an oci:// reference nor repo/chart`,
        {
          hint: 'Give a chart directory or .tgz, oci://host/path/chart, `--repo URL CHART`, or a manifest file or directory.',
        },
      );
    }
    chartPath = local ? opts.target : undefined;
    const r = await helmTemplateCoping(
      {
        release,
        chart: opts.target,
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        ...(opts.version ? { version: opts.version } : {}),
        ...(opts.repo ? { repo: opts.repo } : {}),
        ...(opts.plainHttp ? { plainHttp: true } : {}),
        ...(opts.valuesFiles ? { valuesFiles: opts.valuesFiles } : {}),
        ...(opts.set ? { set: opts.set } : {}),
        ...(opts.kubeVersion ? { kubeVersion: opts.kubeVersion } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      opts.onEvent,
    );
    const chart =
      opts.target.startsWith('oci://') || opts.repo || !local
        ? opts.target.split('/').pop()!
        : releaseNameFor(opts.target);
    const parsed = parseManifests(r.stdout, chart, { skipKinds: IMAGELESS_KINDS });
    rendered = { release, chart, ...parsed, durationMs: Date.now() - started, helmMs: r.durationMs };
    from = `chart ${opts.target}${opts.version ? ` ${opts.version}` : ''}`;
  }
  const errors: string[] = [];
  const result: ScanResult = extractRelease(rendered, from, rules, errors);
  throwIfErrors(errors);
  const onEvent = opts.onEvent ?? noEvents;
  for (const w of result.warnings) onEvent({ type: 'warn', message: w });
  if (opts.airgap) {
    if (!rendered.chart) {
      throw new SealiftError('USAGE', `--airgap-values needs a chart; ${opts.target} is manifests`, {
        hint: 'Manifests have no values to set: rewrite their image names, or let containerd hosts.toml redirect them.',
      });
    }
    const chart = chartPath ?? (await pulledChart(opts));
    result.knobs = await inferChartKnobs({
      release,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      chart,
      chartName: rendered.chart,
      ...(opts.valuesFiles ? { valuesFiles: opts.valuesFiles } : {}),
      values: opts.set?.length ? [setValues(opts.set)] : [],
      ...(opts.kubeVersion ? { kubeVersion: opts.kubeVersion } : {}),
      rules,
      findings: result.findings,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    applyInference(result, result.knobs);
    result.airgapValues = mergeDeep(
      airgapValues(result.knobs.knobs, opts.airgap.host, opts.airgap.scheme, result.knobs.lists),
      result.knobs.values,
    );
  }
  return result;
}

/** `--set a.b=c` as values (helm's typing of true/false and integers; no list or escape syntax). */
function setValues(set: readonly string[]): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  for (const s of set) {
    const i = s.indexOf('=');
    if (i <= 0) continue;
    const raw = s.slice(i + 1);
    const value = raw === 'true' ? true : raw === 'false' ? false : /^-?\d+$/.test(raw) ? Number(raw) : raw;
    out = setPath(out, s.slice(0, i), value);
  }
  return out;
}

/** A repo or OCI chart pulled into the cache (the newest version when none is given). */
async function pulledChart(opts: ScanOptions): Promise<string> {
  const version =
    opts.version ??
    (
      await helmShowChart({
        chart: opts.target,
        ...(opts.repo ? { repo: opts.repo } : {}),
        ...(opts.plainHttp ? { plainHttp: true } : {}),
      })
    ).version;
  const source: Exclude<ChartSource, { type: 'manifests' }> = opts.repo
    ? { type: 'repo', repoUrl: opts.repo, chart: opts.target, version }
    : { type: 'oci', url: opts.target, version, plainHttp: opts.plainHttp === true };
  return fetchChart(source, {
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

export { formatOrigin };
