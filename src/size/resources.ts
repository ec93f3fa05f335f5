// What rendered manifests ask of a cluster, pure: each workload's replicas x its pod's requests
// and limits (cpu, memory, nvidia.com/gpu, ephemeral-storage), PVC sizes, and the containers
// that request nothing. A pod's request follows the scheduler: the containers' (and sidecar init
// containers') sum, or the largest plain init container when that is larger; a container with a
// limit and no request requests its limit (the API server defaults it so).
import { isPlainObject } from '../config/merge.ts';
import { errorMessage } from '../errors.ts';
import { parseQuantity } from '../quantity.ts';
import type { ManifestDocument } from '../render/manifests.ts';

export const RESOURCE_NAMES = ['cpu', 'memory', 'nvidia.com/gpu', 'ephemeral-storage'] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];
/** base units: cores, bytes, devices, bytes */
export type Amounts = Record<ResourceName, number>;

export const zero = (): Amounts => ({ cpu: 0, memory: 0, 'nvidia.com/gpu': 0, 'ephemeral-storage': 0 });

export function addAmounts(a: Amounts, b: Amounts, times = 1): Amounts {
  const out = zero();
  for (const r of RESOURCE_NAMES) out[r] = a[r] + b[r] * times;
  return out;
}

export interface Workload {
  release: string;
  kind: string;
  namespace?: string;
  name: string;
  /** pods it runs; a DaemonSet runs one per node */
  replicas: number;
  perNode: boolean;
  /** Jobs and CronJobs: they finish, so they are not part of the steady-state totals */
  transient: boolean;
  /** one pod */
  requests: Amounts;
  limits: Amounts;
  /** volumeClaimTemplates, per pod */
  claimStorage: number;
}

export interface ContainerWithoutRequests {
  release: string;
  /** `Deployment knative-serving/activator` */
  workload: string;
  container: string;
  /** the resources it requests nothing of (cpu, memory) */
  missing: ResourceName[];
}

export interface ClaimSize {
  release: string;
  namespace?: string;
  name: string;
  storage: number;
}

export interface ReleaseResources {
  workloads: Workload[];
  claims: ClaimSize[];
  withoutRequests: ContainerWithoutRequests[];
  /** values that are not quantities, and the like: named, the rest counted */
  problems: string[];
}

const get = (v: unknown, ...path: string[]): unknown => {
  let cur = v;
  for (const k of path) cur = isPlainObject(cur) ? cur[k] : undefined;
  return cur;
};

interface PodOf {
  spec: unknown;
  replicas: number;
  perNode: boolean;
  transient: boolean;
}

const pod = (spec: unknown, replicas: number, o: { perNode?: boolean; transient?: boolean } = {}): PodOf => ({
  spec,
  replicas,
  perNode: o.perNode ?? false,
  transient: o.transient ?? false,
});

/** The pod spec of a workload kind and how many pods it runs (undefined: not a workload). */
function podOf(doc: Record<string, unknown>): PodOf | undefined {
  const count = (v: unknown) => (typeof v === 'number' && v >= 0 ? v : 1);
  const template = get(doc, 'spec', 'template', 'spec');
  switch (doc.kind) {
    case 'Pod':
      return pod(doc.spec, 1);
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
    case 'ReplicationController':
      return pod(template, count(get(doc, 'spec', 'replicas')));
    case 'DaemonSet':
      return pod(template, 1, { perNode: true });
    case 'Job':
      return pod(template, count(get(doc, 'spec', 'parallelism')), { transient: true });
    case 'CronJob': {
      const job = get(doc, 'spec', 'jobTemplate', 'spec');
      return pod(get(job, 'template', 'spec'), count(get(job, 'parallelism')), { transient: true });
    }
    default:
      return undefined;
  }
}

/** A container's effective requests and its limits; `problems` collects bad quantities. */
function containerAmounts(c: Record<string, unknown>, where: string, problems: string[]) {
  const read = (key: 'requests' | 'limits'): Partial<Amounts> => {
    const out: Partial<Amounts> = {};
    const block = get(c, 'resources', key);
    for (const r of RESOURCE_NAMES) {
      const v = get(block, r);
      if (v === undefined || v === null) continue;
      try {
        out[r] = parseQuantity(v as string | number, `${where} resources.${key}.${r}`);
      } catch (e) {
        problems.push(errorMessage(e));
      }
    }
    return out;
  };
  const limits = read('limits');
  const requests = { ...limits, ...read('requests') };
  return { requests, limits };
}

const full = (p: Partial<Amounts>): Amounts => ({ ...zero(), ...p });

function storageOf(claimSpec: unknown, where: string, problems: string[]): number {
  const v = get(claimSpec, 'resources', 'requests', 'storage');
  if (v === undefined || v === null) return 0;
  try {
    return parseQuantity(v as string | number, `${where} resources.requests.storage`);
  } catch (e) {
    problems.push(errorMessage(e));
    return 0;
  }
}

export function releaseResources(release: string, documents: readonly ManifestDocument[]): ReleaseResources {
  const out: ReleaseResources = { workloads: [], claims: [], withoutRequests: [], problems: [] };
  for (const d of documents) {
    if (!isPlainObject(d.value)) continue;
    const doc = d.value;
    const name = String(get(doc, 'metadata', 'name') ?? '?');
    const ns = get(doc, 'metadata', 'namespace');
    const namespace = typeof ns === 'string' ? ns : undefined;
    const id = `${String(doc.kind)} ${namespace ? `${namespace}/` : ''}${name}`;
    if (doc.kind === 'PersistentVolumeClaim') {
      out.claims.push({
        release,
        ...(namespace ? { namespace } : {}),
        name,
        storage: storageOf(doc.spec, id, out.problems),
      });
      continue;
    }
    const pod = podOf(doc);
    if (!pod) continue;
    const containers = (get(pod.spec, 'containers') as unknown[] | undefined) ?? [];
    const inits = (get(pod.spec, 'initContainers') as unknown[] | undefined) ?? [];
    let requests = zero();
    let limits = zero();
    const initRequests = zero();
    const initLimits = zero();
    const visit = (c: unknown, kind: 'container' | 'init') => {
      if (!isPlainObject(c)) return;
      const cname = String(c.name ?? '?');
      const a = containerAmounts(c, `${release}: ${id} container ${cname}`, out.problems);
      // a sidecar (init container that keeps running) adds to the pod like a container
      const sidecar = kind === 'init' && c.restartPolicy === 'Always';
      if (kind === 'container' || sidecar) {
        requests = addAmounts(requests, full(a.requests));
        limits = addAmounts(limits, full(a.limits));
        const missing = (['cpu', 'memory'] as const).filter((r) => a.requests[r] === undefined);
        if (missing.length) out.withoutRequests.push({ release, workload: id, container: cname, missing });
      } else {
        for (const r of RESOURCE_NAMES) {
          initRequests[r] = Math.max(initRequests[r], a.requests[r] ?? 0);
          initLimits[r] = Math.max(initLimits[r], a.limits[r] ?? 0);
        }
      }
    };
    for (const c of containers) visit(c, 'container');
    for (const c of inits) visit(c, 'init');
    for (const r of RESOURCE_NAMES) {
      requests[r] = Math.max(requests[r], initRequests[r]);
      limits[r] = Math.max(limits[r], initLimits[r]);
    }
    const templates = (get(doc, 'spec', 'volumeClaimTemplates') as unknown[] | undefined) ?? [];
    const claimStorage =
      doc.kind === 'StatefulSet'
        ? templates.reduce<number>((s, t) => s + storageOf(get(t, 'spec'), id, out.problems), 0)
        : 0;
    out.workloads.push({
      release,
      kind: String(doc.kind),
      ...(namespace ? { namespace } : {}),
      name,
      replicas: pod.replicas,
      perNode: pod.perNode,
      transient: pod.transient,
      requests,
      limits,
      claimStorage,
    });
  }
  return out;
}
