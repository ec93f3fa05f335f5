// `sealift check -e <env>`: the offline preflight. The environment's kubeVersion against every
// chart's own kubeVersion constraint (read from the chart archive: the site dir's charts/ when
// the environment takes charts from the site and they are there, else the pulled chart), against
// each component's documented Kubernetes range, the components against each other, and every
// kind the environment renders against the APIs that Kubernetes version serves (or the
// environment's own CRDs define). Ranges and their sources are data (compat/*.yaml).
import { relative } from 'node:path';
import pLimit from 'p-limit';
import { loadEnvironment, type Environment } from '../config/index.ts';
import type { RunOptions } from '../events.ts';
import { planReleases } from '../generate/plan.ts';
import { globToRegExp } from '../images/rules.ts';
import { chartPath, readChartMetadata, renderReleases, type RenderTarget } from '../render/index.ts';
import { siteRenderTargets } from '../render/site.ts';
import { DEFAULT_COMPAT_DIR, loadCompat, type CompatData } from './compat.ts';
import {
  evaluateApis,
  evaluateCharts,
  evaluateComponents,
  type ChartConstraint,
  type CheckFinding,
  type ComponentInstance,
} from './evaluate.ts';
import { formatVersion, parseVersion } from './range.ts';

export { DEFAULT_COMPAT_DIR } from './compat.ts';
export type { CheckFinding, CheckLevel } from './evaluate.ts';

export interface CheckOptions extends RunOptions {
  stackDir: string;
  env: string;
  overlays?: string[];
  /** compatibility data directories (default: sealift's compat/) */
  compatDirs?: string[];
  cacheDir?: string;
}

export interface CheckResult {
  /** false when a hard finding exists */
  ok: boolean;
  environment: string;
  kubeVersion: string;
  hard: number;
  warnings: number;
  findings: CheckFinding[];
}

/** A path relative to the working directory when it is below it, else absolute. */
const display = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
};

/** The releases of the environment that the compat data knows, grouped by component and version. */
export function componentInstances(env: Environment, data: CompatData): ComponentInstance[] {
  const byKey = new Map<string, ComponentInstance>();
  const matchers = Object.entries(data.components).map(([id, c]) => ({
    id,
    title: c.title,
    charts: new Set(c.match.charts),
    files: c.match.files.map(globToRegExp),
  }));
  for (const [name, rel] of Object.entries(env.releases)) {
    if (!rel.enabled) continue;
    const m = matchers.find((x) =>
      rel.chart ? x.charts.has(rel.chart.name) : rel.manifests!.files.some((f) => x.files.some((re) => re.test(f))),
    );
    if (!m) continue;
    const text = rel.chart?.version ?? rel.manifests!.version;
    const kind = rel.chart ? 'chart.version' : 'manifests.version';
    const version = parseVersion(text, `${display(env.file)}: releases.${name}.${kind}`);
    const key = `${m.id} ${version.version}`;
    const inst = byKey.get(key) ?? { component: m.id, title: m.title, version, releases: [] };
    inst.releases.push(name);
    byKey.set(key, inst);
  }
  return [...byKey.values()];
}

/** Each chart release's Chart.yaml kubeVersion, from the site dir's archive or the pulled chart. */
async function chartConstraints(targets: readonly RenderTarget[], opts: CheckOptions): Promise<ChartConstraint[]> {
  const limit = pLimit(4);
  return Promise.all(
    targets
      .filter((t) => t.source.type !== 'manifests')
      .map((t) =>
        limit(async (): Promise<ChartConstraint> => {
          const tgz = await chartPath(t.chartFile, t.source as Exclude<RenderTarget['source'], { type: 'manifests' }>, {
            ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          const meta = await readChartMetadata(tgz, opts);
          return {
            release: t.name,
            chart: meta.name,
            version: meta.version,
            ...(meta.kubeVersion ? { kubeVersion: meta.kubeVersion } : {}),
            from: `${display(tgz)} Chart.yaml`,
          };
        }),
      ),
  );
}

export async function checkEnvironment(opts: CheckOptions): Promise<CheckResult> {
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const kube = parseVersion(env.kubeVersion, `${display(env.file)}: kubeVersion`);
  const data = await loadCompat(opts.compatDirs ?? [DEFAULT_COMPAT_DIR]);
  const plans = planReleases(env, { mode: 'deploy' });
  // at the site (chartsFrom: site), the site dir's charts/ and releases/: nothing is fetched
  const targets = env.chartsFrom === 'site' ? await siteRenderTargets(plans, opts.stackDir) : plans;
  const charts = await chartConstraints(targets, opts);
  const chartFindings = evaluateCharts(kube, charts);
  // helm refuses to render a chart whose kubeVersion excludes the cluster: that is reported already
  const refused = new Set(chartFindings.filter((f) => f.level === 'hard').flatMap((f) => f.releases));
  const rendered = await renderReleases(
    targets.filter((t) => !refused.has(t.name)),
    {
      kubeVersion: env.kubeVersion,
      ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
  );
  const findings = [
    ...chartFindings,
    ...evaluateComponents(kube, componentInstances(env, data), data),
    ...evaluateApis(kube, rendered, data),
  ];
  const hard = findings.filter((f) => f.level === 'hard').length;
  return {
    ok: hard === 0,
    environment: env.name,
    kubeVersion: formatVersion(kube),
    hard,
    warnings: findings.filter((f) => f.level === 'warn').length,
    findings,
  };
}
