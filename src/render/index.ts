// Rendering releases into manifests: charts through `helm template` (pulled once into a cache,
// then rendered from the local .tgz), Knative-style release files downloaded (src/oci/http.ts:
// the one HTTP stack) and parsed as they are. Many releases render in parallel; each result says how long helm took.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import type { ChartSource } from '../generate/plan.ts';
import { fetchFile, fetchText, type FetchedFile } from '../oci/http.ts';
import { helmPull, helmShowChart, helmTemplateCoping } from './helm.ts';
import { parseManifests, parseYamlGo, type ManifestDocument, type ManifestProblem } from './manifests.ts';

export type { ChartSource } from '../generate/plan.ts';

/** What rendering needs of a release (a ReleasePlan fits). */
export interface RenderTarget {
  name: string;
  namespace: string;
  source: ChartSource;
  values: Record<string, unknown>;
  /** a chart archive already on disk (a site dir's charts/): rendered instead of fetching the source */
  chartFile?: string;
}

export interface RenderOptions extends RunOptions {
  kubeVersion?: string;
  /** API versions the cluster serves beyond the built-in ones (helm --api-versions) */
  apiVersions?: readonly string[];
  /** where pulled charts are kept (default: $SEALIFT_CACHE_DIR or ~/.cache/sealift) */
  cacheDir?: string;
  /** how many helm processes at once (default 4) */
  concurrency?: number;
  /** kinds left unparsed (only named): see parseManifests */
  skipKinds?: readonly string[];
}

export interface RenderedRelease {
  release: string;
  /** chart name, for rules that match by chart */
  chart?: string;
  documents: ManifestDocument[];
  problems: ManifestProblem[];
  /** wall time of this release: fetching (or cache hit) plus rendering */
  durationMs: number;
  /** time helm template itself took (undefined for release files) */
  helmMs?: number;
}

export function defaultCacheDir(): string {
  if (process.env.SEALIFT_CACHE_DIR) return process.env.SEALIFT_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sealift');
}

const sha = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

/** A chart helm pulls (from a repository or an OCI registry) */
export type RemoteChartSource = Extract<ChartSource, { type: 'repo' | 'oci' }>;

export function chartName(source: Exclude<ChartSource, { type: 'manifests' }>): string;
export function chartName(source: ChartSource): string | undefined;
export function chartName(source: ChartSource): string | undefined {
  if (source.type === 'repo' || source.type === 'local') return source.chart;
  if (source.type === 'oci') return source.url.split('/').pop() ?? source.url;
  return undefined;
}

/** The one .tgz in a chart cache directory, if it is there. */
async function chartIn(dir: string): Promise<string | undefined> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.tgz'));
  return names.length === 1 ? join(dir, names[0]!) : undefined;
}

/**
 * The chart's .tgz, pulled once per (source, chart, version) into the cache. A pull goes to a
 * temp dir that is renamed into place, so an interrupted pull leaves nothing half-written.
 */
/** Where a chart target's chart is: the site's archive, a local chart's directory (or .tgz) in the stack,
 *  or the chart pulled from its source (cached). */
export async function chartPath(
  chartFile: string | undefined,
  source: Exclude<ChartSource, { type: 'manifests' }>,
  opts: RenderOptions = {},
): Promise<string> {
  if (chartFile) return chartFile;
  return source.type === 'local' ? source.path : fetchChart(source, opts);
}

export async function fetchChart(source: RemoteChartSource, opts: RenderOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const key =
    source.type === 'repo'
      ? `repo ${source.repoUrl} ${source.chart} ${source.version}`
      : `oci ${source.url} ${source.version}`;
  const dir = join(cacheDir, 'charts', sha(key).slice(0, 24));
  const cached = await chartIn(dir);
  if (cached) return cached;
  await mkdir(join(cacheDir, 'charts'), { recursive: true });
  const tmp = await mkdtemp(join(cacheDir, 'charts', '.pull-'));
  try {
    await helmPull({
      ...(source.type === 'repo'
        ? { chart: source.chart, repo: source.repoUrl }
        : { chart: source.url, plainHttp: source.plainHttp }),
      version: source.version,
      destination: tmp,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
      // another render pulled the same chart first: keep theirs
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
      await rm(tmp, { recursive: true, force: true });
    });
    const pulled = await chartIn(dir);
    if (!pulled) throw new SealiftError('INTERNAL', `the chart cache ${dir} holds no single .tgz after a pull`);
    return pulled;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** What `sealift check` reads of a Chart.yaml. */
export interface ChartMetadata {
  name: string;
  version: string;
  /** the Kubernetes versions the chart installs on (a Masterminds semver constraint), if it says */
  kubeVersion?: string;
}

/** The Chart.yaml of a chart archive (or directory), through helm. */
export async function readChartMetadata(chart: string, opts: RunOptions = {}): Promise<ChartMetadata> {
  const { text: stdout } = await helmShowChart({ chart, ...(opts.signal ? { signal: opts.signal } : {}) });
  const meta = parseYamlGo(stdout) as Partial<Record<keyof ChartMetadata, unknown>> | null;
  if (typeof meta?.name !== 'string' || typeof meta.version !== 'string')
    throw new SealiftError('RENDER_FAILED', `${chart}: Chart.yaml has no name or version`, {
      hint: 'Check the chart archive; helm show chart prints what it holds.',
    });
  return {
    name: meta.name,
    version: meta.version,
    ...(typeof meta.kubeVersion === 'string' && meta.kubeVersion.trim() ? { kubeVersion: meta.kubeVersion } : {}),
  };
}

const isHttpUrl = (url: string) => /^https?:\/\//.test(url);
const DOWNLOAD_HINT =
  'Check the source URL in the environment file (sources:), the file path and version, or the network route to it.';

function downloadOptions(opts: RunOptions) {
  return { onEvent: opts.onEvent ?? noEvents, ...(opts.signal ? { signal: opts.signal } : {}), hint: DOWNLOAD_HINT };
}

/** A local path or file:// URL as a path, with an error that names it. */
async function readLocalFile<T>(url: string, read: (path: string) => Promise<T>): Promise<T> {
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  try {
    return await read(path);
  } catch (e) {
    throw new SealiftError('NOT_FOUND', `cannot read release file ${path}: ${errorMessage(e)}`, {
      hint: 'Check the path in the environment file.',
    });
  }
}

/**
 * A release file's text: an http(s) download (not cached: release files are small, and what a
 * URL serves is what the list must reflect), or a local path / file:// URL read in place.
 */
export async function fetchManifestFile(url: string, opts: RunOptions = {}): Promise<string> {
  if (!isHttpUrl(url)) return readLocalFile(url, (p) => readFile(p, 'utf8'));
  return (await fetchText(url, downloadOptions(opts))).text;
}

/** A release file saved to `dest` (streamed and renamed into place), with its sha256 and size. */
export async function saveManifestFile(url: string, dest: string, opts: RunOptions = {}): Promise<FetchedFile> {
  if (isHttpUrl(url)) return fetchFile(url, dest, downloadOptions(opts));
  const bytes = await readLocalFile(url, (p) => readFile(p));
  await writeFileAtomic(dest, bytes);
  return { path: dest, sha256: sha(bytes), size: bytes.length };
}

interface ImageRewrite {
  from: string;
  to: string;
}

/** Prefix rewrites the generated wrapper chart applies to release files (deploy mode), if any. */
function imageRewrites(values: Record<string, unknown>): ImageRewrite[] {
  const r = values.imageRewrites;
  if (!Array.isArray(r)) return [];
  return r.filter((x): x is ImageRewrite => typeof x?.from === 'string' && typeof x?.to === 'string' && x.from !== '');
}

export async function renderRelease(t: RenderTarget, opts: RenderOptions = {}): Promise<RenderedRelease> {
  const started = Date.now();
  const onEvent = opts.onEvent ?? noEvents;
  const chart = chartName(t.source);
  if (t.source.type === 'manifests') {
    const documents: ManifestDocument[] = [];
    const problems: ManifestProblem[] = [];
    const rewrites = imageRewrites(t.values);
    for (const f of t.source.files) {
      let text = await fetchManifestFile(f.url, opts);
      for (const rw of rewrites) text = text.split(rw.from).join(rw.to);
      const parsed = parseManifests(text, f.name, { skipKinds: opts.skipKinds ?? [] });
      documents.push(...parsed.documents);
      problems.push(...parsed.problems);
    }
    return { release: t.name, documents, problems, durationMs: Date.now() - started };
  }
  const tgz = await chartPath(t.chartFile, t.source, opts);
  const base = {
    release: t.name,
    namespace: t.namespace,
    chart: tgz,
    values: [t.values],
    ...(opts.kubeVersion ? { kubeVersion: opts.kubeVersion } : {}),
    ...(opts.apiVersions?.length ? { apiVersions: [...opts.apiVersions] } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const result = await helmTemplateCoping(base, onEvent);
  const parsed = parseManifests(result.stdout, chart, { skipKinds: opts.skipKinds ?? [] });
  return {
    release: t.name,
    ...(chart ? { chart } : {}),
    ...parsed,
    durationMs: Date.now() - started,
    helmMs: result.durationMs,
  };
}

/** Renders releases in parallel (p-limit), results in the input order. */
export async function renderReleases(
  targets: readonly RenderTarget[],
  opts: RenderOptions = {},
): Promise<RenderedRelease[]> {
  const limit = pLimit(Math.max(1, opts.concurrency ?? 4));
  const onEvent = opts.onEvent ?? noEvents;
  onEvent({ type: 'phase', name: 'render', total: targets.length });
  return Promise.all(
    targets.map((t) =>
      limit(async () => {
        const r = await renderRelease(t, opts);
        onEvent({
          type: 'info',
          message: `rendered ${t.name}: ${r.documents.length} documents in ${r.durationMs} ms`,
          fields: { release: t.name, documents: r.documents.length, ms: r.durationMs },
        });
        return r;
      }),
    ),
  );
}
