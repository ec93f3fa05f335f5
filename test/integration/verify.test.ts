// `sealift verify -e airgap`, render side: the environment rendered as deployed (airgap values,
// charts from loopback servers) pulls only from its registry, and only images of the list.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { runHelmfile } from '../../src/generate/helmfile.ts';
import { generate } from '../../src/generate/index.ts';
import { planReleases } from '../../src/generate/plan.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { runSealift } from '../support/cli.ts';

const REG = '10.61.3.31:35000'; // the airgap environment's registry: a string, never contacted

let tmp: Awaited<ReturnType<typeof tempDir>>;
let servers: ChartServers;
let overlay: string;
let stack: string;

async function sealift(args: string[]) {
  const r = await runSealift([...args, '--stack', stack, '--overlay', overlay], {
    env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

interface VerifyJson {
  ok: boolean;
  registry: string;
  checked: number;
  offenders: {
    reference: string;
    problem: string;
    why: { release: string; kind: string; name: string; path: string }[];
    message: string;
  }[];
  knobless: { reference: string; rule: string }[];
}

beforeAll(async () => {
  tmp = await tempDir('sealift-verify-test-');
  servers = await startChartServers();
  overlay = join(tmp.path, 'sources.yaml');
  await writeFile(overlay, await servers.sourcesOverlayYaml());
  // a copy of the stack's environments, so a test can take a knob out
  stack = join(tmp.path, 'stack');
  await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
  // and its own charts (platform-extras), which the airgap environment renders from the stack dir
  await cp(join(PROJECT_ROOT, 'charts'), join(stack, 'charts'), { recursive: true });
  const r = await sealift(['images', '-e', 'airgap']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await servers?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

describe('verify -e airgap', () => {
  it('passes: every image the deployed render pulls is in the registry and maps back to the list; knob-less ones are warnings', async () => {
    const r = await sealift(['verify', '-e', 'airgap', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as VerifyJson;
    expect(v).toMatchObject({ ok: true, registry: REG, offenders: [] });
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      images: unknown[];
    };
    expect(v.checked).toBe(lock.images.length);
    expect(v.knobless.map((k) => k.reference).sort()).toEqual([
      'docker.io/kserve/storage-initializer:latest',
      'docker.io/library/busybox:1.28',
    ]);

    const human = await sealift(['verify', '-e', 'airgap']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/verify airgap: 32 of 34 images .* are in 10\.61\.3\.31:35000/);
    expect(human.stderr).toContain(
      'warning: docker.io/library/busybox:1.28 stays outside 10.61.3.31:35000: no values knob moves it',
    );
  });

  it("the lock's why-trail and images --explain name the knob that moves each image; no hand knob is left", async () => {
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      images: { reference: string; why: { path: string; knob?: string }[]; knobless?: object }[];
      knobs: Record<string, Record<string, string>>;
    };
    const router = lock.images.find((i) => i.reference === 'docker.io/kserve/router:v0.15.2')!;
    expect(router.why).toEqual([expect.objectContaining({ path: 'data.router.image', knob: 'kserve.router.image' })]);
    expect(lock.knobs.istiod).toEqual({ 'defaults.global.hub': 'docker.io/istio/' });
    // every image is moved by a knob or marked knob-less
    expect(lock.images.filter((i) => !i.knobless && i.why.some((w) => !w.knob)).map((i) => i.reference)).toEqual([]);
    const env = await loadEnvironment(stack, 'airgap');
    expect(Object.values(env.releases).flatMap((r) => Object.keys(r.imageKnobs))).toEqual([]);
    const r = await sealift(['images', '-e', 'airgap', '--explain', '--out', join(tmp.path, 'lists-knobs')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('knob: docker.io/istio/proxyv2:1.23.2 <- defaults.global.hub');
    expect(r.stdout).toMatch(/knob-less: docker\.io\/library\/busybox:1\.28: .*grpc-simple/);
  });

  it('fails naming the image and where it comes from when one knob is taken out of the airgap values', async () => {
    // the knobs are inferred into the lock: take kserve's router knob out of it
    const lockFile = join(stack, 'imagelists', 'airgap.lock.json');
    const original = await readFile(lockFile, 'utf8');
    const lock = JSON.parse(original) as { knobs: Record<string, Record<string, string>> };
    expect(lock.knobs.kserve!['kserve.router.image']).toBe('kserve/router');
    delete lock.knobs.kserve!['kserve.router.image'];
    await writeFile(lockFile, JSON.stringify(lock));
    try {
      const r = await sealift(['verify', '-e', 'airgap', '--json']);
      expect(r.code).toBe(8);
      const v = JSON.parse(r.stdout) as VerifyJson;
      expect(v.ok).toBe(false);
      expect(v.offenders).toEqual([
        expect.objectContaining({
          reference: 'docker.io/kserve/router:v0.15.2',
          problem: 'outside-registry',
          why: [
            expect.objectContaining({
              release: 'kserve',
              kind: 'ConfigMap',
              name: 'inferenceservice-config',
              path: 'data.router.image',
            }),
          ],
        }),
      ]);
      const human = await sealift(['verify', '-e', 'airgap']);
      expect(human.code).toBe(8);
      expect(human.stdout).toContain('escape: docker.io/kserve/router:v0.15.2 (not in 10.61.3.31:35000)');
      expect(human.stdout).toContain('<- kserve: ConfigMap kserve/inferenceservice-config data.router.image');
      expect(human.stdout).toContain('hint: point the value that sets each image at the registry');
    } finally {
      await writeFile(lockFile, original);
    }
  });

  it('an image the environment excludes from the list is a warning, not an escape', async () => {
    const airgap = join(stack, 'environments', 'airgap.yaml');
    const original = await readFile(airgap, 'utf8');
    // (airgap.yaml already has a releases: mapping, for platform-extras)
    const exclude = '  kserve:\n    excludeImages: ["docker.io/kserve/sklearnserver:*"]\n';
    expect(original).toContain('\nreleases:\n');
    await writeFile(airgap, original.replace('\nreleases:\n', `\nreleases:\n${exclude}`));
    try {
      const out = join(tmp.path, 'lists-excluding');
      expect((await sealift(['images', '-e', 'airgap', '--out', out])).code).toBe(0);
      const r = await sealift(['verify', '-e', 'airgap', '--lock', join(out, 'airgap.lock.json'), '--json']);
      expect(r.code, r.stdout).toBe(0);
      const v = JSON.parse(r.stdout) as VerifyJson & { excluded: { reference: string; by: string }[] };
      expect(v.excluded).toEqual([
        expect.objectContaining({
          reference: `${REG}/kserve/sklearnserver:v0.15.2`,
          by: expect.stringContaining('releases.kserve.excludeImages[0] "docker.io/kserve/sklearnserver:*"'),
        }),
      ]);
    } finally {
      await writeFile(airgap, original);
    }
  });

  it('fails when an image is in the registry but the list does not have it', async () => {
    const lockFile = join(tmp.path, 'short.lock.json');
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      images: { reference: string }[];
    };
    lock.images = lock.images.filter((i) => i.reference !== 'docker.io/istio/pilot:1.23.2');
    await writeFile(lockFile, JSON.stringify(lock));
    const r = await sealift(['verify', '-e', 'airgap', '--lock', lockFile, '--json']);
    expect(r.code).toBe(8);
    const v = JSON.parse(r.stdout) as VerifyJson;
    expect(v.offenders.map((o) => [o.reference, o.problem])).toEqual([[`${REG}/istio/pilot:1.23.2`, 'not-in-list']]);
    expect(v.offenders[0]!.message).toContain('Deployment istio-system/istiod spec.template.spec.containers[0].image');
  });

  it('passes on what the generated airgap helmfile renders from site files alone (verify --manifests)', async () => {
    const site = join(tmp.path, 'site');
    await generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: site, overlays: [overlay] });
    // the site layout the bundle carries: charts/<chart>-<version>.tgz and releases/<release>/<file>
    await cp(join(FIXTURES, 'charts'), join(site, 'charts'), { recursive: true });
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] });
    for (const p of planReleases(env, { mode: 'upstream' })) {
      if (p.source.type !== 'manifests') continue;
      await mkdir(join(site, p.sitePath), { recursive: true });
      for (const f of p.source.files)
        await writeFile(join(site, p.sitePath, f.name), await (await fetch(f.url)).text());
    }
    const helmHome = join(tmp.path, 'site-helm');
    const rendered = await runHelmfile(['-e', 'airgap', 'template', '--include-crds'], {
      cwd: site,
      env: {
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
      },
    });
    const out = join(tmp.path, 'airgap-rendered.yaml');
    await writeFile(out, rendered.stdout);
    const r = await sealift(['verify', '-e', 'airgap', '--manifests', out, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as VerifyJson;
    expect(v).toMatchObject({ ok: true, offenders: [] });
    expect(v.checked).toBe(34);
    expect(v.knobless.map((k) => k.reference).sort()).toEqual([
      'docker.io/kserve/storage-initializer:latest',
      'docker.io/library/busybox:1.28',
    ]);

    // and the same rendered output with one image pointed back upstream is caught
    await writeFile(out, rendered.stdout.replace(`${REG}/istio/pilot:1.23.2`, 'docker.io/istio/pilot:1.23.2'));
    const bad = await sealift(['verify', '-e', 'airgap', '--manifests', out, '--json']);
    expect(bad.code).toBe(8);
    expect(
      (JSON.parse(bad.stdout) as VerifyJson).offenders.map((o) => [o.reference, o.why[0]?.kind, o.why[0]?.name]),
    ).toEqual([['docker.io/istio/pilot:1.23.2', 'Deployment', 'istiod']]);
  });

  it('--registry: every image is in the site registry (a real one on loopback), with the digest the lock has', async () => {
    await using registry = await startRegistry();
    const manifests = join(tmp.path, 'three.yaml');
    const deployment = (name: string, image: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: ${name}, namespace: ns }\nspec: { template: { spec: { containers: [{ name: c, image: "${image}" }] } } }\n---\n`;
    await writeFile(
      manifests,
      deployment('pilot', `${REG}/istio/pilot:1.23.2`) +
        deployment('controller', `${REG}/jetstack/cert-manager-controller:v1.16.1`) +
        deployment('router', `${REG}/kserve/router:v0.15.2`),
    );
    const seeded = await seedImages(
      registry.host,
      [{ ref: 'docker.io/istio/pilot:1.23.2' }, { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1' }],
      { workDir: tmp.path },
    );
    const args = [
      'verify',
      '-e',
      'airgap',
      '--manifests',
      manifests,
      '--registry',
      registry.host,
      '--plain-http',
      '--json',
    ];
    const r = await sealift(args);
    expect(r.code, r.stderr).toBe(8);
    const v = JSON.parse(r.stdout) as VerifyJson & { registryChecks: { reference: string; status: string }[] };
    expect(v.offenders).toEqual([
      expect.objectContaining({
        reference: `${REG}/kserve/router:v0.15.2`,
        problem: 'missing',
        why: [expect.objectContaining({ kind: 'Deployment', name: 'router' })],
      }),
    ]);
    expect(v.offenders[0]!.message).toContain(`${registry.host}/kserve/router:v0.15.2 does not exist`);
    expect(
      v.registryChecks
        .filter((c) => c.status === 'present')
        .map((c) => c.reference)
        .sort(),
    ).toEqual([`${REG}/istio/pilot:1.23.2`, `${REG}/jetstack/cert-manager-controller:v1.16.1`]);

    // the lock knows another digest for pilot than the registry serves: named as a mismatch
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      images: { reference: string; digest?: string }[];
    };
    for (const i of lock.images)
      if (i.reference === 'docker.io/istio/pilot:1.23.2') i.digest = `sha256:${'0'.repeat(64)}`;
    const lockFile = join(tmp.path, 'digests.lock.json');
    await writeFile(lockFile, JSON.stringify(lock));
    await seedImages(registry.host, [{ ref: 'docker.io/kserve/router:v0.15.2' }], { workDir: tmp.path });
    const mismatch = await sealift([...args, '--lock', lockFile]);
    expect(mismatch.code).toBe(8);
    expect((JSON.parse(mismatch.stdout) as VerifyJson).offenders.map((o) => [o.reference, o.problem])).toEqual([
      [`${REG}/istio/pilot:1.23.2`, 'digest-mismatch'],
    ]);

    // with the right digest in the lock, and router pushed, all is well
    for (const i of lock.images) if (i.reference === 'docker.io/istio/pilot:1.23.2') i.digest = seeded[0]!.digest;
    await writeFile(lockFile, JSON.stringify(lock));
    const good = await sealift([...args, '--lock', lockFile]);
    expect(good.code, good.stdout).toBe(0);
  });

  it('says what to do when there is no list yet', async () => {
    const r = await sealift(['verify', '-e', 'airgap', '--lock', join(tmp.path, 'missing.lock.json')]);
    expect(r.code).toBe(9);
    expect(r.stderr).toContain('cannot read the image lock');
    expect(r.stderr).toContain('sealift images -e <env>');
  });
});
