// registry.scheme: scoped, end to end through generate and verify: an air-gapped environment whose
// registry is a real one on loopback keeps each image's upstream host as the first path component
// (REG/docker.io/istio/pilot), in every values knob and in the Knative release files, so the
// generated helmfile deploys exactly the names `sealift load --scheme scoped` pushes; verify takes
// the scheme from the environment.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { runHelmfile } from '../../src/generate/helmfile.ts';
import { generate } from '../../src/generate/index.ts';
import { planReleases } from '../../src/generate/plan.ts';
import { manifestImages } from '../../src/images/index.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { runSealift } from '../support/cli.ts';

const KNOBLESS = ['docker.io/kserve/storage-initializer:latest', 'docker.io/library/busybox:1.28'];

let tmp: Awaited<ReturnType<typeof tempDir>>;
let servers: ChartServers;
let registry: TestRegistry;
let overlay: string;
let stack: string;
let lockRefs: string[];
let rendered: string;

async function sealift(args: string[]) {
  const r = await runSealift([...args, '--stack', stack, '--overlay', overlay], {
    env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

beforeAll(async () => {
  tmp = await tempDir('sealift-scoped-test-');
  servers = await startChartServers();
  registry = await startRegistry();
  overlay = join(tmp.path, 'sources.yaml');
  await writeFile(overlay, await servers.sourcesOverlayYaml());
  stack = join(tmp.path, 'stack');
  for (const d of ['environments', 'templates']) await cp(join(PROJECT_ROOT, d), join(stack, d), { recursive: true });
  await writeFile(
    join(stack, 'environments', 'scoped.yaml'),
    `# a site whose registry keeps upstream hosts apart\nregistry:\n  host: ${registry.host}\n  plainHttp: true\n  scheme: scoped\nchartsFrom: site\n`,
  );
  const r = await sealift(['images', '-e', 'scoped']);
  expect(r.code, r.stderr).toBe(0);
  const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'scoped.lock.json'), 'utf8')) as {
    images: { reference: string }[];
  };
  lockRefs = lock.images.map((i) => i.reference);

  // the site as `load --extract-to` lays it out; `helmfile -e scoped template` there, offline
  const site = join(tmp.path, 'site');
  await generate({ stackDir: stack, env: 'scoped', outDir: site, overlays: [overlay] });
  await cp(join(FIXTURES, 'charts'), join(site, 'charts'), { recursive: true });
  const env = await loadEnvironment(stack, 'scoped', { overlays: [overlay] });
  for (const p of planReleases(env, { mode: 'upstream' })) {
    if (p.source.type !== 'manifests') continue;
    await mkdir(join(site, p.sitePath), { recursive: true });
    for (const f of p.source.files) await writeFile(join(site, p.sitePath, f.name), await (await fetch(f.url)).text());
  }
  const helmHome = join(tmp.path, 'site-helm');
  const out = await runHelmfile(['-e', 'scoped', 'template', '--include-crds'], {
    cwd: site,
    env: {
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });
  rendered = join(tmp.path, 'scoped-rendered.yaml');
  await writeFile(rendered, out.stdout);
});

afterAll(async () => {
  await servers?.stop();
  await registry?.[Symbol.asyncDispose]();
  await tmp?.[Symbol.asyncDispose]();
});

describe('registry.scheme: scoped', () => {
  it('every image the generated helmfile renders is REG/<upstream-host>/<path> of a listed image', async () => {
    const reg = registry.host;
    const deployed = await manifestImages('scoped', [rendered]);
    const knobless = deployed.images.filter((d) => d.knobless).map((d) => d.reference);
    expect(knobless.sort()).toEqual(KNOBLESS);
    const scoped = deployed.images.filter((d) => !d.knobless).map((d) => d.reference);
    const upstream: string[] = [];
    for (const ref of scoped) {
      expect(ref.startsWith(`${reg}/`), ref).toBe(true);
      const rest = ref.slice(reg.length + 1);
      // the first component is the upstream host (docker.io, quay.io, gcr.io, nvcr.io, ...)
      expect(rest.split('/')[0], ref).toMatch(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/);
      expect(lockRefs, `${ref} is not REG/ + a listed image`).toContain(rest);
      upstream.push(rest);
    }
    // and every listed image is deployed: from the registry, or (knob-less) from upstream
    expect([...upstream, ...knobless].sort()).toEqual([...lockRefs].sort());
    // each kind of knob and the release files, by name
    for (const name of [
      'docker.io/istio/pilot:1.23.2', // istiod global.hub (a hub prefix)
      'docker.io/istio/proxyv2:1.23.2', // the same hub, in the injector config
      'quay.io/jetstack/cert-manager-controller:v1.16.1', // cert-manager image.repository
      'quay.io/brancz/kube-rbac-proxy:v0.18.0', // a full name with a tag
      'docker.io/kserve/kserve-controller:v0.15.2', // a familiar name (docker.io implied)
    ])
      expect(scoped).toContain(`${reg}/${name}`);
    const knative = scoped.filter((r) => r.startsWith(`${reg}/gcr.io/knative-releases/`));
    expect(knative.length).toBeGreaterThan(3);
    for (const r of knative) expect(r).toMatch(/@sha256:[0-9a-f]{64}$/);
  });

  it('verify takes the scheme from the environment and passes; --scheme host-swap is a different mapping and fails', async () => {
    const checked = await sealift(['verify', '-e', 'scoped', '--manifests', rendered, '--json']);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    const v = JSON.parse(checked.stdout) as { ok: boolean; scheme: string; checked: number; offenders: unknown[] };
    expect(v).toMatchObject({ ok: true, scheme: 'scoped', offenders: [] });
    expect(v.checked).toBe(lockRefs.length);

    // verify rendering the environment itself (no --manifests) agrees
    const own = await sealift(['verify', '-e', 'scoped', '--json']);
    expect(own.code, own.stdout + own.stderr).toBe(0);
    expect(JSON.parse(own.stdout)).toMatchObject({ ok: true, scheme: 'scoped', offenders: [] });
    const human = await sealift(['verify', '-e', 'scoped', '--manifests', rendered]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`are in ${registry.host} (scoped names) and in`);

    const wrong = await sealift(['verify', '-e', 'scoped', '--manifests', rendered, '--scheme', 'host-swap', '--json']);
    expect(wrong.code).toBe(8);
    const w = JSON.parse(wrong.stdout) as { offenders: { reference: string; problem: string }[] };
    expect(w.offenders.length).toBe(lockRefs.length - KNOBLESS.length);
    expect(new Set(w.offenders.map((o) => o.problem))).toEqual(new Set(['not-in-list']));
    expect(wrong.stderr).toContain("--scheme host-swap: scoped's values name images by its registry.scheme scoped");
  });
});
