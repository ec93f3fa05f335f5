// Totals and the fit verdict, pure: per release and overall, replicas x pod requests and limits;
// against the environment's cluster block (nodes x allocatable, less the headroom kept free).
import type { ClusterConfig } from '../config/index.ts';
import { parseQuantity } from '../quantity.ts';
import { addAmounts, zero, type Amounts, type ReleaseResources, type Workload } from './resources.ts';

export interface ReleaseTotals {
  release: string;
  workloads: number;
  pods: number;
  requests: Amounts;
  limits: Amounts;
  /** PVCs plus StatefulSet claim templates x replicas, bytes */
  pvcStorage: number;
}

/** A DaemonSet runs one pod per node: with a cluster block that many, else one. */
export function podsOf(w: Workload, nodes: number | undefined): number {
  return w.perNode ? (nodes ?? 1) : w.replicas;
}

export function releaseTotals(release: string, r: ReleaseResources, nodes: number | undefined): ReleaseTotals {
  let requests = zero();
  let limits = zero();
  let pods = 0;
  let pvcStorage = r.claims.reduce((s, c) => s + c.storage, 0);
  const steady = r.workloads.filter((w) => !w.transient);
  for (const w of steady) {
    const n = podsOf(w, nodes);
    pods += n;
    requests = addAmounts(requests, w.requests, n);
    limits = addAmounts(limits, w.limits, n);
    pvcStorage += w.claimStorage * n;
  }
  return { release, workloads: steady.length, pods, requests, limits, pvcStorage };
}

export function sumTotals(releases: readonly ReleaseTotals[]): Omit<ReleaseTotals, 'release'> {
  return releases.reduce(
    (t, r) => ({
      workloads: t.workloads + r.workloads,
      pods: t.pods + r.pods,
      requests: addAmounts(t.requests, r.requests),
      limits: addAmounts(t.limits, r.limits),
      pvcStorage: t.pvcStorage + r.pvcStorage,
    }),
    { workloads: 0, pods: 0, requests: zero(), limits: zero(), pvcStorage: 0 },
  );
}

export type FitVerdict = 'fits' | 'tight' | 'does-not-fit';

export interface ResourceFit {
  resource: 'cpu' | 'memory' | 'nvidia.com/gpu';
  requested: number;
  /** nodes x allocatable */
  capacity: number;
  /** capacity less the headroom */
  usable: number;
  verdict: FitVerdict;
}

export interface ClusterFit {
  verdict: FitVerdict;
  nodes: number;
  headroomPercent: number;
  perNode: { cpu: number; memory: number; 'nvidia.com/gpu': number };
  resources: ResourceFit[];
  /** pods whose own requests exceed one node's allocatable: they can never be scheduled */
  podsTooLarge: { workload: string; resource: string; requested: number; node: number }[];
}

const WORST: FitVerdict[] = ['fits', 'tight', 'does-not-fit'];

/** Steady-state requests against the cluster: fits within the usable part, tight within the headroom. */
export function fitCluster(requests: Amounts, workloads: readonly Workload[], cluster: ClusterConfig): ClusterFit {
  const perNode = {
    cpu: parseQuantity(cluster.cpu, 'cluster.cpu'),
    memory: parseQuantity(cluster.memory, 'cluster.memory'),
    'nvidia.com/gpu': cluster.gpus,
  };
  const keep = 1 - cluster.headroom / 100;
  const resources = (['cpu', 'memory', 'nvidia.com/gpu'] as const).map((resource): ResourceFit => {
    const capacity = perNode[resource] * cluster.nodes;
    const usable = capacity * keep;
    const requested = requests[resource];
    const verdict = requested <= usable ? 'fits' : requested <= capacity ? 'tight' : 'does-not-fit';
    return { resource, requested, capacity, usable, verdict };
  });
  const podsTooLarge = workloads.flatMap((w) =>
    (['cpu', 'memory', 'nvidia.com/gpu'] as const)
      .filter((r) => w.requests[r] > perNode[r])
      .map((r) => ({
        workload: `${w.release}: ${w.kind} ${w.namespace ? `${w.namespace}/` : ''}${w.name}`,
        resource: r,
        requested: w.requests[r],
        node: perNode[r],
      })),
  );
  const verdicts = [...resources.map((r) => r.verdict), ...(podsTooLarge.length ? (['does-not-fit'] as const) : [])];
  const verdict = verdicts.reduce<FitVerdict>((w, v) => (WORST.indexOf(v) > WORST.indexOf(w) ? v : w), 'fits');
  return { verdict, nodes: cluster.nodes, headroomPercent: cluster.headroom, perNode, resources, podsTooLarge };
}
