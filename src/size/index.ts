// `sealift size -e <env>`: what the stack asks of the cluster, from the manifests as deployed
// (the environment rendered with its deploy values, or `helmfile template` output given with
// --manifests), per release and in total, against the environment's cluster block.
import { basename, resolve } from 'node:path';
import { loadEnvironment } from '../config/index.ts';
import type { ClusterConfig } from '../config/index.ts';
import type { RunOptions } from '../events.ts';
import { planReleases } from '../generate/plan.ts';
import { fetchManifestFile, renderReleases } from '../render/index.ts';
import { parseManifests, type ManifestDocument } from '../render/manifests.ts';
import { siteRenderTargets } from '../render/site.ts';
import { fitCluster, podsOf, releaseTotals, sumTotals, type ClusterFit, type ReleaseTotals } from './fit.ts';
import { releaseResources, type ContainerWithoutRequests, type Workload } from './resources.ts';

export type { Amounts, ResourceName } from './resources.ts';
export { RESOURCE_NAMES } from './resources.ts';
export type { ClusterFit, FitVerdict, ReleaseTotals } from './fit.ts';

export interface SizeOptions extends RunOptions {
  stackDir: string;
  env: string;
  overlays?: string[];
  /** size these rendered files (`helmfile -e <env> template` output) instead of rendering */
  manifests?: string[];
  cacheDir?: string;
  concurrency?: number;
}

export interface SizeResult {
  /** false when the requests do not fit the cluster block */
  ok: boolean;
  environment: string;
  releases: ReleaseTotals[];
  totals: Omit<ReleaseTotals, 'release'>;
  workloads: (Workload & { pods: number })[];
  containersWithoutRequests: ContainerWithoutRequests[];
  /** the cluster block as given, when the environment has one */
  cluster?: ClusterConfig;
  fit?: ClusterFit;
  /** values that are not quantities: named, left out of the sums */
  problems: string[];
}

/** Documents per release: rendered from the environment, or from files grouped by their chart. */
async function documentsByRelease(opts: SizeOptions, env: Awaited<ReturnType<typeof loadEnvironment>>) {
  const groups = new Map<string, ManifestDocument[]>();
  if (opts.manifests?.length) {
    for (const f of opts.manifests) {
      const parsed = parseManifests(await fetchManifestFile(resolve(f)), basename(f));
      for (const d of parsed.documents) {
        // helmfile template output names each document's chart in its `# Source: <chart>/...` line
        const key = d.template?.split('/')[0] ?? basename(f);
        groups.set(key, [...(groups.get(key) ?? []), d]);
      }
    }
    return groups;
  }
  const plans = planReleases(env, { mode: 'deploy' });
  // at the site (chartsFrom: site), the site dir's charts/ and releases/: nothing is fetched
  const targets = env.chartsFrom === 'site' ? await siteRenderTargets(plans, opts.stackDir) : plans;
  const rendered = await renderReleases(targets, {
    kubeVersion: env.kubeVersion,
    skipKinds: ['CustomResourceDefinition'],
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  for (const r of rendered) groups.set(r.release, r.documents);
  return groups;
}

export async function sizeEnvironment(opts: SizeOptions): Promise<SizeResult> {
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const nodes = env.cluster?.nodes;
  const releases: ReleaseTotals[] = [];
  const workloads: SizeResult['workloads'] = [];
  const withoutRequests: ContainerWithoutRequests[] = [];
  const problems: string[] = [];
  for (const [release, docs] of await documentsByRelease(opts, env)) {
    const r = releaseResources(release, docs);
    releases.push(releaseTotals(release, r, nodes));
    workloads.push(...r.workloads.map((w) => ({ ...w, pods: podsOf(w, nodes) })));
    withoutRequests.push(...r.withoutRequests);
    problems.push(...r.problems);
  }
  for (const p of problems) opts.onEvent?.({ type: 'warn', message: p });
  const totals = sumTotals(releases);
  const fit = env.cluster
    ? fitCluster(
        totals.requests,
        workloads.filter((w) => !w.transient),
        env.cluster,
      )
    : undefined;
  return {
    ok: fit?.verdict !== 'does-not-fit',
    environment: env.name,
    releases,
    totals,
    workloads,
    containersWithoutRequests: withoutRequests,
    ...(env.cluster ? { cluster: env.cluster } : {}),
    ...(fit ? { fit } : {}),
    problems,
  };
}
