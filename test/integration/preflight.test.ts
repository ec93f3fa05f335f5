// `sealift check` and `sealift size` on the real stack: the fixture charts served on 127.0.0.1
// (Helm repo + OCI registry + release files), pulled and rendered by real helm.
import { copyFile, cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { runSealift } from '../support/cli.ts';
import { tempDir } from '../support/process.ts';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let servers: ChartServers;
let overlay: string;

async function sealift(args: string[], overlays: string[] = []) {
  const r = await runSealift([...args, '--overlay', overlay, ...overlays.flatMap((o) => ['--overlay', o])], {
    env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function overlayFile(name: string, text: string): Promise<string> {
  const f = join(tmp.path, name);
  await writeFile(f, text);
  return f;
}

interface Finding {
  level: string;
  check: string;
  component: string;
  requirement: string;
  actual: string;
  source?: string;
  message: string;
}

beforeAll(async () => {
  tmp = await tempDir('sealift-preflight-test-');
  servers = await startChartServers();
  overlay = await overlayFile('sources.yaml', await servers.sourcesOverlayYaml());
});

afterAll(async () => {
  await servers?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

describe('check -e airgap', () => {
  it('exits 0 on the plan site (v1.28.6), warning about KServe 0.15 with its source; real charts are read', async () => {
    const r = await sealift(['check', '-e', 'airgap', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { ok: boolean; kubeVersion: string; hard: number; findings: Finding[] };
    expect(v).toMatchObject({ ok: true, kubeVersion: 'v1.28.6', hard: 0 });
    expect(v.findings.filter((f) => f.level === 'warn')).toEqual([
      expect.objectContaining({
        component: 'KServe',
        requirement: 'Kubernetes >=1.30.0-0',
        actual: 'Kubernetes v1.28.6',
        source: 'https://kserve.github.io/website/latest/admin/serverless/serverless/',
      }),
    ]);
    // cert-manager's pulled chart carries kubeVersion ">= 1.22.0-0"; the other fixture charts carry none
    expect(v.findings.filter((f) => f.check === 'chart')).toEqual([
      expect.objectContaining({
        level: 'ok',
        component: 'cert-manager',
        requirement: 'Kubernetes >= 1.22.0-0',
        source: expect.stringMatching(/cert-manager-v1\.16\.1\.tgz Chart\.yaml$/),
      }),
    ]);

    // every kind the stack renders is a built-in one v1.28.6 serves, or one of the stack's own CRDs
    expect(v.findings.filter((f) => f.check === 'api')).toEqual([
      expect.objectContaining({ level: 'ok', component: 'Kubernetes APIs' }),
    ]);

    const human = await sealift(['check', '-e', 'airgap']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(
      /^WARN +KServe v0\.15\.2 +Kubernetes >=1\.30\.0-0 +Kubernetes v1\.28\.6 +https:\/\/kserve/m,
    );
    expect(human.stdout).toContain('check airgap (Kubernetes v1.28.6): 11 checks, 0 failed, 1 warnings');
    expect(human.stderr).toContain(
      'warning: KServe v0.15.2 documents Kubernetes >=1.30.0-0; the environment has v1.28.6',
    );
    expect(human.stderr).toContain('(source: https://kserve.github.io/website/latest/admin/serverless/serverless/)');
  });

  it('fails (exit 12) on Kubernetes v1.25.0, naming Knative Serving', async () => {
    const old = await overlayFile('k125.yaml', 'kubeVersion: v1.25.0\n');
    const r = await sealift(['check', '-e', 'airgap', '--json'], [old]);
    expect(r.code, r.stderr).toBe(12);
    const v = JSON.parse(r.stdout) as { ok: boolean; findings: Finding[] };
    expect(v.ok).toBe(false);
    expect(v.findings.filter((f) => f.level === 'hard').map((f) => f.component)).toEqual([
      'Knative Serving',
      'Knative net-istio',
    ]);
    const human = await sealift(['check', '-e', 'airgap'], [old]);
    expect(human.code).toBe(12);
    expect(human.stdout).toContain(
      'fail: Knative Serving v1.15.2 needs Kubernetes >=1.28.0-0; the environment has v1.25.0',
    );
  });

  it("fails on a version the pulled chart's own kubeVersion excludes (cert-manager: >= 1.22.0-0)", async () => {
    const r = await sealift(
      ['check', '-e', 'airgap', '--json'],
      [await overlayFile('k121.yaml', 'kubeVersion: v1.21.0\n')],
    );
    expect(r.code).toBe(12);
    const v = JSON.parse(r.stdout) as { findings: Finding[] };
    expect(v.findings.find((f) => f.check === 'chart')).toMatchObject({
      level: 'hard',
      component: 'cert-manager',
      message: expect.stringContaining('requires Kubernetes >= 1.22.0-0; the environment has v1.21.0'),
    });
  });

  it("at the site (--stack <site dir>, chartsFrom: site) check and size read the site's charts/ and releases/, fetch nothing", async () => {
    // a site dir as load --extract-to writes it
    const site = join(tmp.path, 'site');
    await cp(join(PROJECT_ROOT, 'environments'), join(site, 'environments'), { recursive: true });
    // the charts kept in the stack (platform-extras) travel as directories, the others as .tgz
    await cp(join(PROJECT_ROOT, 'charts'), join(site, 'charts'), { recursive: true });
    for (const c of (await readdir(join(FIXTURES, 'charts'))).filter((f) => f.endsWith('.tgz')))
      await copyFile(join(FIXTURES, 'charts', c), join(site, 'charts', c));
    const knative = join(FIXTURES, 'releases', 'knative');
    const releaseFiles: [string, string][] = [
      ['knative-serving-crds', join(knative, 'serving', 'knative-v1.15.2', 'serving-crds.yaml')],
      ['knative-serving', join(knative, 'serving', 'knative-v1.15.2', 'serving-core.yaml')],
      ['net-istio', join(knative, 'net-istio', 'knative-v1.15.1', 'net-istio.yaml')],
    ];
    for (const [release, file] of releaseFiles) {
      await mkdir(join(site, 'releases', release), { recursive: true });
      await copyFile(file, join(site, 'releases', release, file.split('/').pop()!));
    }
    const before = servers.requests.length;
    const siteEnv = { env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'site-cache') } };
    // the loopback sources stay in place (--overlay) so that a fallback could only reach 127.0.0.1
    // size renders the site's files: the same totals as from the sources
    const sized = await runSealift(['size', '-e', 'airgap', '--stack', site, '--overlay', overlay, '--json'], siteEnv);
    expect(sized.exitCode, String(sized.stderr)).toBe(0);
    expect((JSON.parse(String(sized.stdout)) as SizeJson).totals.requests.cpu).toBeCloseTo(1.45, 3);

    // then a cert-manager chart whose own kubeVersion excludes 1.28
    const work = join(tmp.path, 'repack');
    await mkdir(work, { recursive: true });
    await execa('tar', ['-xzf', join(FIXTURES, 'charts', 'cert-manager-v1.16.1.tgz'), '-C', work]);
    const chartYaml = join(work, 'cert-manager', 'Chart.yaml');
    await writeFile(
      chartYaml,
      (await readFile(chartYaml, 'utf8')).replace(/^kubeVersion: .*$/m, "kubeVersion: '>= 1.29.0-0'"),
    );
    await execa(requireTool('helm'), ['package', join(work, 'cert-manager'), '-d', join(site, 'charts')]);

    const r = await runSealift(['check', '-e', 'airgap', '--stack', site, '--overlay', overlay, '--json'], siteEnv);
    // nothing was downloaded: charts and release files came from the site dir
    expect(servers.requests.slice(before)).toEqual([]);
    expect(r.exitCode, String(r.stderr)).toBe(12);
    const v = JSON.parse(String(r.stdout)) as { findings: Finding[] };
    expect(v.findings.find((f) => f.check === 'chart')).toMatchObject({
      level: 'hard',
      requirement: 'Kubernetes >= 1.29.0-0',
      source: `${join(site, 'charts', 'cert-manager-v1.16.1.tgz')} Chart.yaml`,
    });
  });
});

interface SizeJson {
  ok: boolean;
  releases: { release: string; pods: number; requests: Record<string, number> }[];
  totals: { pods: number; requests: Record<string, number>; limits: Record<string, number> };
  containersWithoutRequests: { release: string; workload: string; container: string; missing: string[] }[];
  fit: { verdict: string; nodes: number; resources: { resource: string; requested: number; usable: number }[] };
}

describe('size -e airgap', () => {
  it('totals CPU and memory requests of the real charts, names containers without requests, and fits the plan site', async () => {
    const r = await sealift(['size', '-e', 'airgap', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as SizeJson;
    const sum = (key: 'cpu' | 'memory') => v.releases.reduce((s, x) => s + (x.requests[key] ?? 0), 0);
    // istiod 500m/2Gi, gateway 100m/128Mi, knative-serving core 4 pods, net-istio 2, kserve controller + rbac proxy
    expect(v.totals.requests.cpu).toBeCloseTo(1.45, 3);
    expect(v.totals.requests.memory).toBe(2 * 2 ** 30 + 128 * 2 ** 20 + 360 * 2 ** 20 + 60 * 2 ** 20 + 600 * 2 ** 20);
    expect(v.totals.requests.cpu).toBeCloseTo(sum('cpu'), 6);
    expect(v.totals.requests.memory).toBe(sum('memory'));
    expect(v.releases.find((x) => x.release === 'istiod')).toMatchObject({ pods: 1, requests: { cpu: 0.5 } });
    // cert-manager's chart sets no resources by default
    expect(v.containersWithoutRequests).toContainEqual({
      release: 'cert-manager',
      workload: 'Deployment cert-manager/cert-manager',
      container: 'cert-manager-controller',
      missing: ['cpu', 'memory'],
    });
    expect(v.fit).toMatchObject({ verdict: 'fits', nodes: 3 });
    expect(v.fit.resources.find((x) => x.resource === 'cpu')).toMatchObject({ usable: 3 * 64 * 0.8 });

    const human = await sealift(['size', '-e', 'airgap']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^TOTAL +12 +1\.45 /m);
    expect(human.stdout).toContain(
      'cert-manager: Deployment cert-manager/cert-manager container cert-manager-controller (no cpu, memory request)',
    );
    expect(human.stdout).toContain('size airgap: fits');
  });

  it("--manifests: sizes a render made elsewhere (helm template output), one row per chart of its '# Source:' lines", async () => {
    const helm = requireTool('helm');
    const render = async (release: string, chart: string) =>
      String(
        (
          await execa(helm, [
            'template',
            release,
            join(FIXTURES, 'charts', chart),
            '--namespace',
            'x',
            '--kube-version',
            'v1.28.6',
          ])
        ).stdout,
      );
    const file = join(tmp.path, 'rendered.yaml');
    await writeFile(
      file,
      `${await render('istiod', 'istiod-1.23.2.tgz')}\n---\n${await render('cert-manager', 'cert-manager-v1.16.1.tgz')}`,
    );
    const r = await sealift(['size', '-e', 'airgap', '--manifests', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as SizeJson;
    expect(v.releases.map((x) => x.release).sort()).toEqual(['cert-manager', 'istiod']);
    expect(v.totals.requests.cpu).toBeCloseTo(0.5, 6);
    expect(v.totals.requests.memory).toBe(2 * 2 ** 30);
    expect(v.containersWithoutRequests.map((c) => c.container)).toContain('cert-manager-controller');
  });

  it('exits 13 when the requests do not fit a smaller cluster', async () => {
    const small = await overlayFile('small.yaml', 'cluster: { nodes: 1, cpu: 1, memory: 2Gi, gpus: 0, headroom: 0 }\n');
    const r = await sealift(['size', '-e', 'airgap', '--json'], [small]);
    expect(r.code).toBe(13);
    const v = JSON.parse(r.stdout) as SizeJson;
    expect(v.ok).toBe(false);
    expect(v.fit.verdict).toBe('does-not-fit');
  });
});

describe('check and size: bad input before any work', () => {
  it('no -e, an unknown environment, a broken compat file: coded errors and their exit codes', async () => {
    const noEnv = await runSealift(['check']);
    expect(noEnv.exitCode).toBe(2);
    expect(String(noEnv.stderr)).toContain('error[USAGE]: sealift check needs -e <env>');

    const unknown = await runSealift(['size', '-e', 'nowhere', '--json']);
    expect(unknown.exitCode).toBe(2);
    expect(JSON.parse(String(unknown.stdout))).toMatchObject({
      ok: false,
      error: { code: 'USAGE', message: expect.stringContaining('unknown environment "nowhere"') },
    });

    const compat = join(tmp.path, 'my-compat');
    await mkdir(compat, { recursive: true });
    await writeFile(join(compat, 'mine.yaml'), "rules:\n  - { component: kserve, versions: '>=0.15', level: warn }\n");
    const bad = await runSealift(['check', '-e', 'airgap', '--compat', compat]);
    expect(bad.exitCode).toBe(3);
    expect(String(bad.stderr)).toMatch(/error\[CONFIG_INVALID\]: .*mine\.yaml:2: rules\.0\.why: /);
  });
});
