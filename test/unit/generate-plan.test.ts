import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment, type Environment } from '../../src/config/index.ts';
import { planReleases, siteImage } from '../../src/generate/plan.ts';
import { readImageLock } from '../../src/images/lock.ts';
import { formatImageReference, normalizeImageReference } from '../../src/oci/reference.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { tempDir } from '../support/process.ts';

const REG = '10.61.3.31:35000';
/** the knobs `sealift images -e airgap` inferred, as committed */
const inferredKnobs = async () => (await readImageLock(join(PROJECT_ROOT, 'imagelists', 'airgap.lock.json'))).knobs!;

describe('siteImage, host-swap', () => {
  it.each([
    // a hub (a prefix the chart appends names to) is written with a trailing /
    ['docker.io/istio/', `${REG}/istio`],
    ['index.docker.io/istio/', `${REG}/istio`],
    ['kserve/agent', `${REG}/kserve/agent`],
    ['busybox:1.28', `${REG}/library/busybox:1.28`],
    ['quay.io/brancz/kube-rbac-proxy:v0.18.0', `${REG}/brancz/kube-rbac-proxy:v0.18.0`],
    // a registry knob (bitnami's image.registry): the chart appends the repository
    ['docker.io', REG],
    ['quay.io', REG],
    [
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
      `${REG}/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
    ],
  ])('%s -> %s', (from, to) => {
    expect(siteImage(from, { host: REG, scheme: 'host-swap' }, 'test')).toBe(to);
  });
});

describe('siteImage, scoped', () => {
  it.each([
    // a hub: a registry host and a path the chart appends image names to
    ['docker.io/istio/', `${REG}/docker.io/istio`],
    ['index.docker.io/istio/', `${REG}/docker.io/istio`],
    ['docker.io', `${REG}/docker.io`],
    ['index.docker.io', `${REG}/docker.io`],
    // a familiar name: docker.io is where a runtime pulls it from, so it is the scope
    ['kserve/agent', `${REG}/docker.io/kserve/agent`],
    ['busybox:1.28', `${REG}/docker.io/library/busybox:1.28`],
    ['quay.io/jetstack/cert-manager-controller', `${REG}/quay.io/jetstack/cert-manager-controller`],
    ['quay.io/brancz/kube-rbac-proxy:v0.18.0', `${REG}/quay.io/brancz/kube-rbac-proxy:v0.18.0`],
    ['localhost/x/y', `${REG}/localhost/x/y`],
    [
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
      `${REG}/gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
    ],
  ])('%s -> %s', (from, to) => {
    expect(siteImage(from, { host: REG, scheme: 'scoped' }, 'test')).toBe(to);
  });

  it('refuses an upstream host with a port, which cannot be a path component', () => {
    expect(() => siteImage('127.0.0.1:5000/x/y', { host: REG, scheme: 'scoped' }, 'releases.r.imageKnobs.a')).toThrow(
      /releases\.r\.imageKnobs\.a: "127\.0\.0\.1:5000\/x\/y" becomes "10\.61\.3\.31:35000\/127\.0\.0\.1:5000\/x\/y" under registry\.scheme scoped, which is not a valid image name/,
    );
    expect(siteImage('127.0.0.1:5000/x/y', { host: REG, scheme: 'host-swap' }, 'test')).toBe(`${REG}/x/y`);
  });
});

/** The airgap environment with extra YAML merged last (as `--overlay` does). */
async function airgapWith(yaml: string): Promise<Environment> {
  await using dir = await tempDir('sealift-plan-');
  const overlay = join(dir.path, 'overlay.yaml');
  await writeFile(overlay, yaml);
  return await loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] });
}

describe('planReleases', () => {
  it('orders releases so that every release comes after what it needs', async () => {
    const plans = planReleases(await loadEnvironment(PROJECT_ROOT, 'online'), { mode: 'deploy' });
    const pos = new Map(plans.map((p, i) => [p.name, i]));
    expect(plans.map((p) => p.name).sort()).toEqual([
      'cert-manager',
      'istio-base',
      'istio-ingressgateway',
      'istiod',
      'knative-serving',
      'knative-serving-crds',
      'kserve',
      'kserve-crd',
      'net-istio',
    ]);
    for (const p of plans) for (const n of p.needs) expect(pos.get(n)!).toBeLessThan(pos.get(p.name)!);
  });

  it('sources as upstream publishes: OCI for KServe and cert-manager, HTTP repo for Istio, downloads for Knative', async () => {
    const plans = planReleases(await loadEnvironment(PROJECT_ROOT, 'online'), { mode: 'upstream' });
    const by = (n: string) => plans.find((p) => p.name === n)!;
    expect(by('kserve').source).toEqual({
      type: 'oci',
      url: 'oci://ghcr.io/kserve/charts/kserve',
      version: 'v0.15.2',
      plainHttp: false,
    });
    expect(by('cert-manager').source).toEqual({
      type: 'oci',
      url: 'oci://quay.io/jetstack/charts/cert-manager',
      version: 'v1.16.1',
      plainHttp: false,
    });
    expect(by('istio-ingressgateway').source).toEqual({
      type: 'repo',
      repoUrl: 'https://istio-release.storage.googleapis.com/charts',
      chart: 'gateway',
      version: '1.23.2',
    });
    expect(by('knative-serving').source).toEqual({
      type: 'manifests',
      files: [
        {
          name: 'serving-core.yaml',
          url: 'https://github.com/knative/serving/releases/download/knative-v1.15.2/serving-core.yaml',
        },
      ],
    });
    expect(by('kserve').sitePath).toBe('charts/kserve-v0.15.2.tgz');
    expect(by('net-istio').sitePath).toBe('releases/net-istio/');
    expect(by('kserve').values).toEqual({
      kserve: { controller: { deploymentMode: 'Serverless' }, storage: { enableModelcar: true } },
    });
  });

  it('airgap deploy: every inferred knob host-swapped, release files rewritten by prefix', async () => {
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
    const knobs = await inferredKnobs();
    const plans = planReleases(env, { mode: 'deploy', inferredKnobs: knobs });
    const by = (n: string) => plans.find((p) => p.name === n)!;
    const cm = by('cert-manager').values as Record<string, { image?: { repository: string }; repository?: string }>;
    expect(cm.image?.repository).toBe(`${REG}/jetstack/cert-manager-controller`);
    expect(cm.acmesolver?.image?.repository).toBe(`${REG}/jetstack/cert-manager-acmesolver`);
    expect(by('istiod').values).toEqual({ defaults: { global: { hub: `${REG}/istio` } } });
    const kserve = by('kserve').values as { kserve: Record<string, Record<string, unknown>> };
    expect(kserve.kserve.controller).toEqual({
      deploymentMode: 'Serverless',
      image: `${REG}/kserve/kserve-controller`,
      rbacProxyImage: `${REG}/brancz/kube-rbac-proxy:v0.18.0`,
    });
    expect((kserve.kserve.servingruntime as Record<string, { image: string }>).tritonserver?.image).toBe(
      `${REG}/nvidia/tritonserver`,
    );
    expect(by('knative-serving').values).toEqual({
      files: ['serving-core.yaml'],
      imageRewrites: [{ from: 'gcr.io/knative-releases/', to: `${REG}/knative-releases/` }],
    });
    // every knob of every release is rewritten, none left at its upstream value
    for (const [name, rel] of Object.entries(knobs)) {
      const values = JSON.stringify(by(name).values);
      for (const upstream of Object.values(rel)) expect(values).not.toContain(`"${upstream.replace(/\/+$/, '')}"`);
    }
  });

  it("values rules the lock carries (bitnami's allowInsecureImages) are set with a registry; the release's own values win", async () => {
    const env = await airgapWith('releases:\n  kserve:\n    values:\n      global: { keep: mine }\n');
    const inferredValues = { kserve: { global: { keep: 'rule', security: { allowInsecureImages: true } } } };
    const deploy = planReleases(env, { mode: 'deploy', inferredValues }).find((p) => p.name === 'kserve')!;
    expect(deploy.values.global).toEqual({ keep: 'mine', security: { allowInsecureImages: true } });
    const upstream = planReleases(env, { mode: 'upstream', inferredValues }).find((p) => p.name === 'kserve')!;
    expect(upstream.values.global).toEqual({ keep: 'mine' });
  });

  it('a knob through a list item changes that item of the whole list the lock carries; without the list it is a clear error', async () => {
    const env = await airgapWith(
      'releases:\n  kserve:\n    imageKnobs:\n      sidecars[1].image: docker.io/acme/log:2\n',
    );
    const sidecars = [
      { name: 'proxy', image: 'quay.io/acme/proxy:v3', port: 15001 },
      { name: 'log', image: 'docker.io/acme/log:2' },
    ];
    const inferredKnobs = { kserve: { 'sidecars[0].image': 'quay.io/acme/proxy:v3' } };
    const deploy = planReleases(env, { mode: 'deploy', inferredKnobs, inferredValues: { kserve: { sidecars } } });
    expect(deploy.find((p) => p.name === 'kserve')!.values.sidecars).toEqual([
      { name: 'proxy', image: `${REG}/acme/proxy:v3`, port: 15001 },
      { name: 'log', image: `${REG}/acme/log:2` },
    ]);
    expect(() => planReleases(env, { mode: 'deploy', inferredKnobs })).toThrow(
      /knob sidecars\[0\]\.image goes through the list sidecars, which no values give/,
    );
  });

  it('a hand knob wins over an inferred knob on the same path; an inferred one fills the rest', async () => {
    const env = await airgapWith(
      'releases:\n  kserve:\n    imageKnobs:\n      kserve.router.image: mirror.example.com/kserve/router\n',
    );
    const plans = planReleases(env, { mode: 'deploy', inferredKnobs: await inferredKnobs() });
    const kserve = plans.find((p) => p.name === 'kserve')!.values as { kserve: Record<string, { image: string }> };
    expect(kserve.kserve.router!.image).toBe(`${REG}/kserve/router`);
    expect(kserve.kserve.agent!.image).toBe(`${REG}/kserve/agent`);
  });

  it('upstream mode leaves image knobs to the chart defaults, even for airgap', async () => {
    const plans = planReleases(await loadEnvironment(PROJECT_ROOT, 'airgap'), { mode: 'upstream' });
    expect(plans.find((p) => p.name === 'istiod')!.values).toEqual({});
    expect(plans.find((p) => p.name === 'net-istio')!.values).toEqual({ files: ['net-istio.yaml'], imageRewrites: [] });
  });

  it('airgap deploy with scheme scoped: every knob kind keeps its upstream host as the first path component', async () => {
    const env = await airgapWith('registry:\n  scheme: scoped\n');
    expect(env.registry).toEqual({ host: REG, plainHttp: true, scheme: 'scoped' });
    const knobs = await inferredKnobs();
    const plans = planReleases(env, { mode: 'deploy', inferredKnobs: knobs });
    const by = (n: string) => plans.find((p) => p.name === n)!;
    // repository-only knob (cert-manager composes image.repository:tag itself)
    const cm = by('cert-manager').values as Record<string, { image?: { repository: string }; repository?: string }>;
    expect(cm.image?.repository).toBe(`${REG}/quay.io/jetstack/cert-manager-controller`);
    expect(cm.startupapicheck?.image?.repository).toBe(`${REG}/quay.io/jetstack/cert-manager-startupapicheck`);
    // hub prefix (istiod appends /pilot, /proxyv2)
    expect(by('istiod').values).toEqual({ defaults: { global: { hub: `${REG}/docker.io/istio` } } });
    // familiar names, a name with a tag, an explicit docker.io name
    const kserve = by('kserve').values as { kserve: Record<string, Record<string, unknown>> };
    expect(kserve.kserve.controller).toEqual({
      deploymentMode: 'Serverless',
      image: `${REG}/docker.io/kserve/kserve-controller`,
      rbacProxyImage: `${REG}/quay.io/brancz/kube-rbac-proxy:v0.18.0`,
    });
    const runtimes = kserve.kserve.servingruntime as Record<string, { image: string }>;
    expect(runtimes.mlserver?.image).toBe(`${REG}/docker.io/seldonio/mlserver`);
    expect(runtimes.tritonserver?.image).toBe(`${REG}/nvcr.io/nvidia/tritonserver`);
    expect(runtimes.tensorflow?.image).toBe(`${REG}/docker.io/tensorflow/serving`);
    // release file prefixes
    expect(by('net-istio').values).toEqual({
      files: ['net-istio.yaml'],
      imageRewrites: [{ from: 'gcr.io/knative-releases/', to: `${REG}/gcr.io/knative-releases/` }],
    });
    // every knob: REG/ then the fully qualified upstream name, nothing else
    let count = 0;
    for (const [name, rel] of Object.entries(knobs)) {
      for (const [path, knob] of Object.entries(rel)) {
        const upstream = knob.replace(/\/+$/, '');
        const value = path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], by(name).values);
        expect(typeof value === 'string' && value.startsWith(`${REG}/`), `${name} ${path}: ${String(value)}`).toBe(
          true,
        );
        const rest = (value as string).slice(REG.length + 1);
        expect(rest.split('/')[0], `${name} ${path}`).toBe(normalizeImageReference(upstream).registry);
        expect(formatImageReference(normalizeImageReference(rest))).toBe(
          formatImageReference(normalizeImageReference(upstream)),
        );
        count++;
      }
    }
    expect(count).toBeGreaterThan(20);
  });

  it('refuses release file prefixes that would rewrite the files twice', async () => {
    const env = await airgapWith(
      'registry:\n  scheme: scoped\nreleases:\n  net-istio:\n    manifests:\n      images: [gcr.io/knative-releases, knative-releases]\n',
    );
    expect(() => planReleases(env, { mode: 'deploy' })).toThrow(
      /image prefix "knative-releases" also matches "10\.61\.3\.31:35000\/gcr\.io\/knative-releases"/,
    );
  });
});
