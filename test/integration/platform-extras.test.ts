// charts/platform-extras rendered by real helm as the airgap environment deploys it (no cluster,
// no network: a local chart): what each role may do and who is bound to it, default-deny plus
// the stack's own traffic per namespace, monitors only with monitoring.coreos.com/v1 in the
// environment's apiVersions, the TLS issuers for both CA choices, and the smoke test's
// InferenceService naming the registry's model image.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { generate } from '../../src/generate/index.ts';
import { planReleases } from '../../src/generate/plan.ts';
import { renderRelease } from '../../src/render/index.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { tempDir } from '../support/process.ts';

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

async function render(overlay?: string) {
  const env = await loadEnvironment(PROJECT_ROOT, 'airgap', overlay ? { overlays: [overlay] } : {});
  const plan = planReleases(env, { mode: 'deploy' }).find((p) => p.name === 'platform-extras')!;
  const r = await renderRelease(plan, { kubeVersion: env.kubeVersion, apiVersions: env.apiVersions });
  return r.documents.map((d) => d.value as Doc);
}

const of = (docs: Doc[], kind: string, ns?: string) =>
  docs.filter((d) => d.kind === kind && (ns === undefined || d.metadata.namespace === ns));

describe('platform-extras (airgap)', () => {
  it('gives the three KServe roles, aggregated by convention and bound to the environment groups', async () => {
    const docs = await render();
    const roles = new Map(of(docs, 'ClusterRole').map((d) => [d.metadata.name, d]));
    expect([...roles.keys()].sort()).toEqual(['kserve-admin', 'kserve-model-developer', 'kserve-readonly']);
    expect(roles.get('kserve-admin')!.metadata.labels).toMatchObject({
      'rbac.authorization.k8s.io/aggregate-to-admin': 'true',
    });
    expect(roles.get('kserve-model-developer')!.metadata.labels).toMatchObject({
      'rbac.authorization.k8s.io/aggregate-to-edit': 'true',
    });
    expect(roles.get('kserve-readonly')!.metadata.labels).toMatchObject({
      'rbac.authorization.k8s.io/aggregate-to-view': 'true',
    });
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rules = (name: string) => roles.get(name)!.rules as Rule[];
    const can = (name: string, group: string, resource: string, verb: string) =>
      rules(name).some(
        (r) =>
          r.apiGroups.includes(group) &&
          (r.resources.includes(resource) || r.resources.includes('*')) &&
          (r.verbs.includes(verb) || r.verbs.includes('*')),
      );
    expect(can('kserve-admin', 'serving.kserve.io', 'clusterservingruntimes', 'delete')).toBe(true);
    expect(can('kserve-model-developer', 'serving.kserve.io', 'inferenceservices', 'create')).toBe(true);
    expect(can('kserve-model-developer', 'serving.kserve.io', 'clusterservingruntimes', 'update')).toBe(false);
    expect(can('kserve-model-developer', '', 'secrets', 'create')).toBe(true);
    expect(can('kserve-readonly', 'serving.kserve.io', 'inferencegraphs', 'list')).toBe(true);
    expect(can('kserve-readonly', 'serving.kserve.io', 'inferenceservices', 'create')).toBe(false);
    expect(can('kserve-readonly', '', 'pods/log', 'get')).toBe(true);
    // view never reads Secrets
    expect(can('kserve-readonly', '', 'secrets', 'get')).toBe(false);
    const bindings = of(docs, 'ClusterRoleBinding').map((b) => ({
      role: (b.roleRef as { name: string }).name,
      groups: (b.subjects as { kind: string; name: string }[]).map((s) => `${s.kind}:${s.name}`),
    }));
    expect(bindings).toEqual(
      expect.arrayContaining([
        { role: 'kserve-admin', groups: ['Group:kserve-admins'] },
        { role: 'kserve-model-developer', groups: ['Group:model-developers'] },
        { role: 'kserve-readonly', groups: ['Group:ml-viewers'] },
      ]),
    );
  });

  it('denies by default in kserve, knative-serving and the model namespace, then allows what the stack needs', async () => {
    const docs = await render();
    for (const ns of ['kserve', 'knative-serving', 'kserve-test']) {
      const deny = of(docs, 'NetworkPolicy', ns).find((p) => p.metadata.name === 'default-deny')!;
      expect(deny.spec, ns).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
      expect(of(docs, 'NetworkPolicy', ns).map((p) => p.metadata.name)).toContain('allow-dns');
    }
    type Policy = { ingress?: { from: unknown[]; ports: { port: number }[] }[] };
    const ports = (ns: string, name: string) =>
      ((of(docs, 'NetworkPolicy', ns).find((p) => p.metadata.name === name)!.spec as Policy).ingress ?? []).flatMap(
        (i) => i.ports.map((p) => p.port),
      );
    expect(ports('kserve', 'allow-webhooks')).toEqual([9443]);
    expect(ports('knative-serving', 'allow-webhooks')).toEqual([8443]);
    expect(ports('knative-serving', 'allow-gateway-to-activator')).toEqual([8012, 8013]);
    expect(ports('kserve-test', 'allow-requests')).toEqual([8012, 8013]);
    // net-istio's status prober reaches the gateway pods, or no route ever turns Ready
    const prober = of(docs, 'NetworkPolicy', 'knative-serving').find(
      (p) => p.metadata.name === 'allow-net-istio-prober',
    );
    expect(JSON.stringify(prober?.spec)).toContain('"istio":"ingressgateway"');
    expect(ports('kserve-test', 'allow-metrics')).toEqual([9090, 9091, 8080]);
    // the gateway and the activator are the only sources of requests to model pods
    const from = (
      of(docs, 'NetworkPolicy', 'kserve-test').find((p) => p.metadata.name === 'allow-requests')!.spec as Policy
    ).ingress![0]!.from;
    expect(JSON.stringify(from)).toContain('"istio":"ingressgateway"');
    expect(JSON.stringify(from)).toContain('"app":"activator"');
  });

  it('renders monitors only when the environment says the cluster serves monitoring.coreos.com/v1', async () => {
    const withApi = await render();
    expect(
      of(withApi, 'ServiceMonitor')
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(['istiod', 'knative-serving', 'kserve-controller-manager']);
    expect(of(withApi, 'PodMonitor').length).toBe(3);
    const dashboards = of(withApi, 'ConfigMap').filter((d) => d.metadata.labels?.grafana_dashboard === '1');
    expect(dashboards.map((d) => d.metadata.name).sort()).toEqual([
      'dashboard-error-rate',
      'dashboard-gpu-utilization',
      'dashboard-knative-serving-overview',
      'dashboard-kserve-model-performance',
      'dashboard-request-latency',
    ]);
    // the dashboards query the metrics the stack exports
    const all = dashboards.map((d) => Object.values(d.data as Record<string, string>)[0]!).join('\n');
    for (const metric of [
      'revision_request_count',
      'revision_request_latencies_bucket',
      'activator_request_count',
      'autoscaler_desired_pods',
      'request_predict_seconds_bucket',
      'DCGM_FI_DEV_GPU_UTIL',
      'istio_requests_total',
    ])
      expect(all).toContain(metric);
    for (const d of dashboards) JSON.parse(Object.values(d.data as Record<string, string>)[0]!);

    await using w = await tempDir();
    const overlay = join(w.path, 'no-prometheus.yaml');
    await writeFile(overlay, 'apiVersions: []\n');
    const without = await render(overlay);
    expect(of(without, 'ServiceMonitor')).toEqual([]);
    expect(of(without, 'PodMonitor')).toEqual([]);
    expect(of(without, 'ClusterRole').length).toBe(3);
  });

  it('issues TLS from a self-signed root or the site CA, for the gateway in istio-system', async () => {
    const docs = await render();
    const issuers = new Map(of(docs, 'ClusterIssuer').map((d) => [d.metadata.name, d.spec]));
    expect(issuers.get('site-ca-root')).toEqual({ selfSigned: {} });
    expect(issuers.get('site-ca')).toEqual({ ca: { secretName: 'site-root-ca' } });
    const gateway = of(docs, 'Certificate', 'istio-system')[0]!;
    expect(gateway.spec).toMatchObject({
      secretName: 'knative-ingress-tls',
      dnsNames: ['*.kserve-test.example.com'],
      issuerRef: { kind: 'ClusterIssuer', name: 'site-ca' },
      renewBefore: '360h',
    });
    expect(of(docs, 'PeerAuthentication', 'istio-system')[0]!.spec).toEqual({ mtls: { mode: 'PERMISSIVE' } });

    await using w = await tempDir();
    const overlay = join(w.path, 'site-ca.yaml');
    await writeFile(overlay, 'releases:\n  platform-extras:\n    values:\n      tls: { issuer: ca }\n');
    const own = await render(overlay);
    expect(of(own, 'ClusterIssuer').map((d) => d.metadata.name)).toEqual(['site-ca']);
    expect(of(own, 'Certificate').map((d) => d.metadata.namespace)).toEqual(['istio-system']);
    await writeFile(overlay, 'releases:\n  platform-extras:\n    values:\n      tls: { issuer: vault }\n');
    await expect(render(overlay)).rejects.toMatchObject({
      code: 'RENDER_FAILED',
      message: expect.stringContaining('tls.issuer must be selfSigned or ca'),
    });
  });

  it("writes the smoke test's InferenceService with the registry's model image", async () => {
    const docs = await render();
    const isvc = of(docs, 'InferenceService', 'kserve-test')[0]!;
    expect(isvc.metadata.name).toBe('sklearn-iris');
    expect((isvc.spec as { predictor: { model: unknown } }).predictor.model).toMatchObject({
      modelFormat: { name: 'sklearn' },
      storageUri: 'oci://10.61.3.31:35000/models/sklearn-iris:v1',
    });
  });

  it("refuses a local chart whose Chart.yaml version is not the release's", async () => {
    await using w = await tempDir();
    const overlay = join(w.path, 'version.yaml');
    await writeFile(overlay, 'releases:\n  platform-extras:\n    chart: { version: 9.9.9 }\n');
    await expect(
      generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: join(w.path, 'out'), overlays: [overlay] }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/platform-extras\.chart\.version is 9\.9\.9, but .*Chart\.yaml says 0\.1\.0/),
    });
  });
});
