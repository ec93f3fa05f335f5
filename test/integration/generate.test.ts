// `sealift generate` checked with the real helmfile and helm: every environment lints and renders
// with charts served from loopback (Helm HTTP repo, OCI registry, release-file downloads); the
// airgap environment renders from local chart files with no server running, and every image it
// deploys points at the private registry; show-dag gives the reference install order.
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listEnvironments, loadEnvironment } from '../../src/config/index.ts';
import { runHelmfile } from '../../src/generate/helmfile.ts';
import { generate } from '../../src/generate/index.ts';
import { planReleases } from '../../src/generate/plan.ts';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { tempDir } from '../support/process.ts';

const REGISTRY = '10.61.3.31:35000';

let servers: ChartServers;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let overlay: string;

beforeAll(async () => {
  tmp = await tempDir('sealift-generate-');
  servers = await startChartServers();
  overlay = join(tmp.path, 'loopback-sources.yaml');
  await writeFile(overlay, await servers.sourcesOverlayYaml());
});

afterAll(async () => {
  await servers?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function documents(stdout: string): Doc[] {
  // helm output: one YAML stream; parse document by document as Go's YAML does
  return stdout
    .split(/^---\s*$/m)
    .map((d) => load(d) as Doc | null)
    .filter((d): d is Doc => d !== null && typeof d === 'object');
}

function find(docs: Doc[], kind: string, name: string): Doc | undefined {
  return docs.find((d) => d.kind === kind && d.metadata?.name === name);
}

/** `GROUP RELEASE DEPENDENCIES` table of helmfile show-dag -> group number per release. */
function dagGroups(stdout: string): Map<string, number> {
  const groups = new Map<string, number>();
  for (const line of stdout.split('\n').slice(1)) {
    const [group, release] = line.trim().split(/\s+/);
    if (group && release) groups.set(release, Number(group));
  }
  return groups;
}

describe('generate + helmfile, charts from loopback servers', () => {
  it('every environment with chartsFrom: sources lints and renders; release files keep their {{ }}', async () => {
    const envs = [];
    for (const name of await listEnvironments(PROJECT_ROOT)) {
      const env = await loadEnvironment(PROJECT_ROOT, name, { overlays: [overlay] });
      if (env.chartsFrom === 'sources') envs.push(name);
    }
    expect(envs).toContain('online');
    for (const name of envs) {
      const out = join(tmp.path, `out-${name}`);
      await generate({ stackDir: PROJECT_ROOT, env: name, outDir: out, overlays: [overlay] });
      const before = servers.requests.length;
      await runHelmfile(['-e', name, 'lint'], { cwd: out, env: servers.helmEnv });
      const rendered = await runHelmfile(['-e', name, 'template', '--include-crds'], {
        cwd: out,
        env: servers.helmEnv,
      });
      const served = servers.requests.slice(before);
      // everything came from loopback: the repo index, Istio charts and the Knative files
      expect(served).toContain('200 /charts/index.yaml');
      expect(served).toContain('200 /knative/serving/releases/download/knative-v1.15.2/serving-core.yaml');
      expect(served.filter((r) => !r.startsWith('200 '))).toEqual([]);

      const docs = documents(rendered.stdout);
      // one thing from each release
      expect(find(docs, 'Deployment', 'cert-manager-webhook')?.metadata.namespace).toBe('cert-manager');
      expect(find(docs, 'Deployment', 'istiod')).toBeDefined();
      expect(find(docs, 'Deployment', 'istio-ingressgateway')?.spec.template.metadata.labels.istio).toBe(
        'ingressgateway',
      );
      expect(find(docs, 'CustomResourceDefinition', 'services.serving.knative.dev')).toBeDefined();
      expect(find(docs, 'Deployment', 'net-istio-controller')).toBeDefined();
      expect(find(docs, 'CustomResourceDefinition', 'inferenceservices.serving.kserve.io')).toBeDefined();
      const isvc = find(docs, 'ConfigMap', 'inferenceservice-config');
      expect(JSON.parse(isvc?.data.deploy).defaultDeploymentMode).toBe('Serverless');
      // Knative's own template text reaches the cluster untouched
      const netIstio = find(docs, 'ConfigMap', 'config-istio');
      expect(netIstio?.data._example).toContain('{{gateway_name}}');
      // online: images as upstream publishes them
      const activator = find(docs, 'Deployment', 'activator');
      expect(activator?.spec.template.spec.containers[0].image).toMatch(
        /^gcr\.io\/knative-releases\/.*@sha256:[a-f0-9]{64}$/,
      );
    }
  });

  it('show-dag gives the reference install order', async () => {
    const out = join(tmp.path, 'out-online');
    const dag = await runHelmfile(['-e', 'online', 'show-dag'], { cwd: out, env: servers.helmEnv });
    const g = dagGroups(dag.stdout);
    const before = (a: string, b: string) =>
      expect(g.get(a)!, `${a} before ${b}\n${dag.stdout}`).toBeLessThan(g.get(b)!);
    before('cert-manager/cert-manager', 'kserve/kserve');
    before('kserve/kserve-crd', 'kserve/kserve');
    before('istio-system/istio-base', 'istio-system/istiod');
    before('istio-system/istiod', 'istio-system/istio-ingressgateway');
    before('istio-system/istio-ingressgateway', 'kserve/kserve');
    before('default/knative-serving', 'kserve/kserve');
    before('default/net-istio', 'kserve/kserve');
    before('istio-system/istiod', 'default/net-istio');
    expect(g.size).toBe(9);
  });

  it('--all: one helmfile, each environment takes its own chart locations and values', async () => {
    const out = join(tmp.path, 'out-all');
    const result = await generate({ stackDir: PROJECT_ROOT, env: 'all', outDir: out, overlays: [overlay] });
    expect(result.environments).toEqual(['airgap', 'online']);
    // the site's charts are the served fixture charts; online's prepare hooks fetch the release files
    await cp(join(FIXTURES, 'charts'), join(out, 'charts'), { recursive: true });
    const online = documents(
      (await runHelmfile(['-e', 'online', 'template'], { cwd: out, env: servers.helmEnv })).stdout,
    );
    const airgap = documents(
      (await runHelmfile(['-e', 'airgap', 'template'], { cwd: out, env: servers.helmEnv })).stdout,
    );
    const istiod = (docs: Doc[]) => find(docs, 'Deployment', 'istiod')?.spec.template.spec.containers[0].image;
    expect(istiod(online)).toBe('docker.io/istio/pilot:1.23.2');
    expect(istiod(airgap)).toBe(`${REGISTRY}/istio/pilot:1.23.2`);
    // airgap adds the platform extras (off online, and no images of their own); the rest is the same
    const extras = airgap.filter((d) => d.metadata?.labels?.['app.kubernetes.io/name'] === 'platform-extras');
    expect(extras.length).toBeGreaterThan(20);
    expect(online.length).toBe(airgap.length - extras.length);
  });
});

describe('airgap: local charts, no chart server', () => {
  it('a site missing a chart or a release file: helmfile fails naming what is missing', async () => {
    const site = join(tmp.path, 'incomplete-site');
    await generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: site });
    const missingChart = await runHelmfile(['-e', 'airgap', 'template'], { cwd: site }).catch(
      (e: unknown) => e as Error,
    );
    expect(missingChart).toBeInstanceOf(Error);
    expect((missingChart as Error).message).toMatch(
      /chart charts\/[a-z-]+-v?[0-9.]+\.tgz is missing: put the bundle's site files here/,
    );

    await cp(join(FIXTURES, 'charts'), join(site, 'charts'), { recursive: true });
    const missingFile = await runHelmfile(['-e', 'airgap', 'template'], { cwd: site }).catch(
      (e: unknown) => e as Error,
    );
    expect((missingFile as Error).message).toMatch(/release file [a-z-]+\.yaml is missing from chart [a-z-]+/);
  });

  it('lints and renders from the site layout alone, every image from the private registry', async () => {
    const site = join(tmp.path, 'site');
    await generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: site, overlays: [overlay] });
    // lay the charts and release files down where the plan says the site keeps them,
    // fetched with helm (charts) and HTTP (files) from the loopback servers
    const helm = requireTool('helm');
    await mkdir(join(site, 'charts'), { recursive: true });
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] });
    for (const p of planReleases(env, { mode: 'upstream' })) {
      if (p.source.type === 'local') continue; // generate writes local charts into the site dir
      if (p.source.type === 'manifests') {
        for (const f of p.source.files) {
          const res = await fetch(f.url);
          expect(res.status, f.url).toBe(200);
          await mkdir(join(site, p.sitePath), { recursive: true });
          await writeFile(join(site, p.sitePath, f.name), Buffer.from(await res.arrayBuffer()));
        }
        continue;
      }
      const args =
        p.source.type === 'oci'
          ? ['pull', p.source.url, '--version', p.source.version, ...(p.source.plainHttp ? ['--plain-http'] : [])]
          : ['pull', p.source.chart, '--repo', p.source.repoUrl, '--version', p.source.version];
      await execa(helm, [...args, '--destination', join(site, 'charts')], {
        env: { ...process.env, ...servers.helmEnv },
      });
    }
    // a generate over a site keeps its fetched charts and files
    const again = await generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: site, overlays: [overlay] });
    expect(again.kept).toContain('charts/kserve-v0.15.2.tgz');
    expect(again.kept).toContain('releases/knative-serving/serving-core.yaml');

    await servers.stop();
    const count = servers.requests.length;
    // fresh helm dirs: no cached repo index or chart can help
    const helmHome = join(tmp.path, 'airgap-helm');
    const helmEnv = {
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    };
    await runHelmfile(['-e', 'airgap', 'lint'], { cwd: site, env: helmEnv });
    const rendered = await runHelmfile(['-e', 'airgap', 'template', '--include-crds'], { cwd: site, env: helmEnv });
    expect(servers.requests.length).toBe(count);

    const docs = documents(rendered.stdout);
    const images = new Set<string>();
    const podSpecs = (d: Doc): Doc[] =>
      [d.spec?.template?.spec, d.spec?.jobTemplate?.spec?.template?.spec, d.kind === 'Pod' ? d.spec : undefined].filter(
        Boolean,
      );
    for (const d of docs) {
      for (const spec of podSpecs(d)) {
        for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
          if (c.image !== 'auto') images.add(c.image); // `auto`: injected by istiod from global.hub
          for (const a of c.args ?? []) if (/^--[a-z0-9-]*image=/.test(a)) images.add(a.split('=')[1]);
        }
      }
    }
    // images held in ConfigMaps: Knative's queue sidecar, KServe's JSON config, istiod's injector values
    images.add(find(docs, 'ConfigMap', 'config-deployment')?.data['queue-sidecar-image']);
    const isvc = find(docs, 'ConfigMap', 'inferenceservice-config')!.data;
    for (const key of ['storageInitializer', 'agent', 'router']) images.add(JSON.parse(isvc[key]).image);
    const injector = JSON.parse(find(docs, 'ConfigMap', 'istio-sidecar-injector')!.data.values);
    expect(injector.global.hub).toBe(`${REGISTRY}/istio`);
    for (const cr of docs.filter((d) => d.kind === 'ClusterServingRuntime'))
      for (const c of cr.spec.containers) images.add(c.image);

    expect(images.size).toBeGreaterThan(20);
    expect([...images].filter((i) => !i.startsWith(`${REGISTRY}/`))).toEqual([]);
    // host swapped, path and digest kept
    expect(images).toContain(`${REGISTRY}/jetstack/cert-manager-controller:v1.16.1`);
    expect(
      [...images].some((i) =>
        /^10\.61\.3\.31:35000\/knative-releases\/knative\.dev\/serving\/cmd\/queue@sha256:[a-f0-9]{64}$/.test(i),
      ),
    ).toBe(true);
  });
});
