// sealift size, pure parts: what a rendered workload requests, and the fit verdict.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { parseManifests } from '../../src/render/manifests.ts';
import { fitCluster, releaseTotals } from '../../src/size/fit.ts';
import { releaseResources, zero } from '../../src/size/resources.ts';

const GI = 2 ** 30;
const MI = 2 ** 20;

const MANIFESTS = `
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: app }
spec:
  replicas: 3
  template:
    spec:
      initContainers:
        - name: migrate
          resources: { requests: { cpu: "2", memory: 1Gi } }
        - name: proxy
          restartPolicy: Always
          resources: { requests: { cpu: 100m, memory: 64Mi } }
      containers:
        - name: app
          resources:
            requests: { cpu: 500m, memory: 256Mi, ephemeral-storage: 1Gi }
            limits: { cpu: "1", memory: 512Mi }
        - name: gpu
          resources: { limits: { nvidia.com/gpu: 1, cpu: 1, memory: 1Gi } }
        - name: bare
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent, namespace: app }
spec:
  template:
    spec:
      containers:
        - name: agent
          resources: { requests: { cpu: 50m, memory: 32Mi } }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: app }
spec:
  replicas: 2
  volumeClaimTemplates:
    - metadata: { name: data }
      spec: { resources: { requests: { storage: 10Gi } } }
  template:
    spec:
      containers:
        - name: db
          resources: { requests: { cpu: 1, memory: 2Gi } }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: models, namespace: app }
spec: { resources: { requests: { storage: 100Gi } } }
---
apiVersion: batch/v1
kind: Job
metadata: { name: once, namespace: app }
spec:
  template:
    spec:
      containers:
        - name: once
          resources: { requests: { cpu: "8", memory: 1Gi } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: not-a-workload }
data: { cpu: "100" }
`;

describe('releaseResources', () => {
  const r = releaseResources('app', parseManifests(MANIFESTS, 'app.yaml').documents);

  it("sums a pod's containers and sidecars, takes a larger init container, and a limit for a missing request", () => {
    const web = r.workloads.find((w) => w.name === 'web')!;
    // containers 0.5 + 1 (limit as request) + sidecar 0.1 = 1.6 CPU; the 2-CPU init container is larger
    expect(web.requests.cpu).toBeCloseTo(2);
    // 256Mi + 1Gi + 64Mi = 1344Mi, larger than the init container's 1Gi
    expect(web.requests.memory).toBe(256 * MI + GI + 64 * MI);
    expect(web.requests['nvidia.com/gpu']).toBe(1);
    expect(web.requests['ephemeral-storage']).toBe(GI);
    expect(web.replicas).toBe(3);
  });

  it('names the containers without requests, with what they lack', () => {
    expect(r.withoutRequests).toEqual([
      { release: 'app', workload: 'Deployment app/web', container: 'bare', missing: ['cpu', 'memory'] },
    ]);
  });

  it('counts replicas, one DaemonSet pod per node, claim templates per replica and PVCs; Jobs are transient', () => {
    const t = releaseTotals('app', r, 3);
    // web 3 x 2 + agent 3 x 0.05 + db 2 x 1
    expect(t.requests.cpu).toBeCloseTo(6 + 0.15 + 2);
    expect(t.requests['nvidia.com/gpu']).toBe(3);
    expect(t.pvcStorage).toBe(100 * GI + 2 * 10 * GI);
    expect(t.pods).toBe(3 + 3 + 2);
    expect(r.workloads.find((w) => w.name === 'once')).toMatchObject({ transient: true });
    expect(releaseTotals('app', r, undefined).pods).toBe(3 + 1 + 2);
  });

  it('a value that is not a quantity is named and left out, the rest counted', () => {
    const bad = releaseResources(
      'x',
      parseManifests(
        'kind: Pod\nmetadata: { name: p }\nspec:\n  containers:\n    - name: c\n      resources: { requests: { cpu: lots, memory: 1Gi } }\n',
      ).documents,
    );
    expect(bad.problems).toEqual(['x: Pod p container c resources.requests.cpu: "lots" is not a Kubernetes quantity']);
    expect(bad.workloads[0]!.requests.memory).toBe(GI);
  });
});

describe('fitCluster', () => {
  const site = { nodes: 3, cpu: 64, memory: '450G', gpus: 4, headroom: 20 };
  const req = (cpu: number, memory: number, gpu = 0) => ({ ...zero(), cpu, memory, 'nvidia.com/gpu': gpu });

  it('fits inside the usable part (capacity less headroom)', () => {
    const f = fitCluster(req(100, 100 * GI, 4), [], site);
    expect(f.verdict).toBe('fits');
    expect(f.resources.find((x) => x.resource === 'cpu')).toMatchObject({ capacity: 192, usable: 192 * 0.8 });
    expect(f.resources.find((x) => x.resource === 'memory')!.capacity).toBe(3 * 450e9);
  });

  it('tight when only the headroom holds it, does-not-fit beyond capacity', () => {
    expect(fitCluster(req(160, GI), [], site).verdict).toBe('tight');
    expect(fitCluster(req(10, GI, 13), [], site).verdict).toBe('does-not-fit');
  });

  it('a pod larger than one node does not fit, however roomy the cluster', () => {
    const big = {
      release: 'llm',
      kind: 'Deployment',
      name: 'huge',
      replicas: 1,
      perNode: false,
      transient: false,
      requests: req(8, GI, 8),
      limits: zero(),
      claimStorage: 0,
    };
    const f = fitCluster(req(8, GI, 8), [big], site);
    expect(f.verdict).toBe('does-not-fit');
    expect(f.podsTooLarge).toEqual([
      { workload: 'llm: Deployment huge', resource: 'nvidia.com/gpu', requested: 8, node: 4 },
    ]);
  });
});

describe('the cluster block', () => {
  it('an invalid quantity is an error naming the file, line and key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sealift-cluster-'));
    try {
      const overlay = join(dir, 'site.yaml');
      await writeFile(overlay, 'cluster:\n  nodes: 3\n  cpu: lots\n  memory: 450G\n');
      await expect(loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] })).rejects.toThrow(
        /site\.yaml:3: cluster\.cpu: must be a Kubernetes quantity/,
      );
      await writeFile(overlay, 'cluster:\n  nodes: 3\n  cpu: 64\n  memory: 450G\n  disks: 2\n');
      await expect(loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] })).rejects.toThrow(
        /site\.yaml:5: cluster\.disks: unknown key "disks"/,
      );
      const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
      expect(env.cluster).toEqual({ nodes: 3, cpu: 64, memory: '450G', gpus: 4, headroom: 20 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
