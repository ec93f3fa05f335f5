// `sealift add` against loopback chart servers (a Helm repository and an OCI registry holding the
// real fixture charts), on a copy of the stack: the release is added with comments and key order
// kept, the version pinned, the images reported for the airgap environment; every refusal leaves
// environments/default.yaml byte for byte as it was.
import { cp, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { closeRegistryConnections, RegistryClient } from '../../src/oci/registry.ts';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { runSealift } from '../support/cli.ts';
import { writeListChart } from '../support/list-chart.ts';
import { tempDir } from '../support/process.ts';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let servers: ChartServers;
let stack: string;
let defaults: string;

async function sealift(...args: string[]) {
  const r = await runSealift([...args, '--stack', stack], {
    env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const commentLines = (t: string) => t.split('\n').filter((l) => l.trim().startsWith('#'));

/** The runs of lines `after` has that `before` has not, when every line of `before` is kept in order. */
function insertedText(before: string, after: string): string[][] {
  const was = before.split('\n');
  const runs: string[][] = [];
  let i = 0;
  let run: string[] | undefined;
  for (const line of after.split('\n')) {
    if (i < was.length && line === was[i]) {
      i++;
      run = undefined;
    } else {
      if (!run) runs.push((run = []));
      run.push(line);
    }
  }
  expect(i, 'every line of the file before is still there, in order').toBe(was.length);
  return runs;
}

const POD_TEMPLATE = `apiVersion: v1
kind: Pod
metadata: { name: {{ .Release.Name }} }
spec:
  containers:
    - name: app
      image: {{ .Values.image | quote }}
`;

beforeAll(async () => {
  tmp = await tempDir('sealift-add-test-');
  servers = await startChartServers({ charts: ['knative-operator-1.15.7.tgz', 'cert-manager-v1.16.1.tgz'] });
  stack = join(tmp.path, 'stack');
  await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
  defaults = join(stack, 'environments', 'default.yaml');
}, 120_000);
afterAll(async () => {
  await servers?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

describe('sealift add', () => {
  it('a repository chart without --version: the newest is pinned and printed; comments and key order kept', async () => {
    const before = await readFile(defaults, 'utf8');
    const r = await sealift('add', 'knative-operator', '--repo', servers.helmRepoUrl, '--needs', 'kserve,istiod');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('added release knative-operator: chart knative-operator 1.15.7 (the newest; pinned)');
    expect(r.stdout).toContain(
      'moved in airgap (10.61.3.31:35000): gcr.io/knative-releases/knative.dev/operator/cmd/operator:v1.15.7 <- knative_operator.knative_operator.image',
    );
    const after = await readFile(defaults, 'utf8');
    expect(commentLines(after)).toEqual(commentLines(before));
    const was = parse(before) as Record<string, Record<string, unknown>>;
    const now = parse(after) as Record<string, Record<string, unknown>>;
    expect(Object.keys(now)).toEqual(Object.keys(was));
    expect(Object.keys(now.releases!)).toEqual([...Object.keys(was.releases!), 'knative-operator']);
    expect(now.releases!['knative-operator']).toEqual({
      namespace: 'knative-operator',
      tier: 'apps',
      needs: ['kserve', 'istiod'],
      chart: { source: expect.any(String), name: 'knative-operator', version: '1.15.7' },
    });
    // the file is a valid stack, and the new release is in every environment
    const env = await loadEnvironment(stack, 'online');
    expect(env.releases['knative-operator']?.chart?.version).toBe('1.15.7');
  }, 120_000);

  it('an OCI chart with --version and --write-knobs: the inferred knobs are written for review', async () => {
    const r = await sealift(
      'add',
      `${servers.ociBase}/cert-manager`,
      '--plain-http',
      '--version',
      'v1.16.1',
      '--name',
      'cm2',
      '--write-knobs',
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { version: string; newest: boolean; source: { type: string; added: boolean } };
    expect(res).toMatchObject({ version: 'v1.16.1', newest: false, source: { type: 'oci', added: true } });
    const now = parse(await readFile(defaults, 'utf8')) as {
      releases: Record<string, { imageKnobs?: Record<string, string> }>;
      sources: Record<string, { type: string; url: string; plainHttp?: boolean }>;
    };
    expect(now.releases.cm2!.imageKnobs).toMatchObject({
      'image.repository': 'quay.io/jetstack/cert-manager-controller',
      'webhook.image.repository': 'quay.io/jetstack/cert-manager-webhook',
    });
    expect(Object.values(now.sources)).toContainEqual({ type: 'oci', url: servers.ociBase, plainHttp: true });
  }, 120_000);

  it.each([
    ['a release name that exists already', ['--name', 'kserve'], 3, 'release "kserve" exists already'],
    ['a version that does not exist', ['--version', '9.9.9', '--name', 'x'], 9, '9.9.9'],
    ['--needs naming an unknown release', ['--name', 'y', '--needs', 'nope'], 3, '--needs names "nope"'],
  ])(
    'refuses %s, leaving the file byte-identical',
    async (_what, extra, code, message) => {
      const before = await readFile(defaults);
      const r = await sealift('add', 'knative-operator', '--repo', servers.helmRepoUrl, ...extra, '--json');
      expect(r.code, r.stdout + r.stderr).toBe(code);
      expect(JSON.parse(r.stdout).error.message).toContain(message);
      expect((await readFile(defaults)).equals(before)).toBe(true);
    },
    120_000,
  );

  it('an OCI chart tagged v1.2.3 without --version: the newest semver tag is pinned and printed (not v1.9.0, no prerelease, no latest)', async () => {
    // one chart pushed at v-prefixed versions, and a tag that is no version at all
    const work = join(tmp.path, 'vtags');
    for (const v of ['v1.2.0', 'v1.10.0', 'v1.9.0', 'v2.0.0-rc.1']) {
      const dir = join(work, v, 'vtags');
      await mkdir(join(dir, 'templates'), { recursive: true });
      await writeFile(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: vtags\nversion: ${v}\n`);
      await writeFile(join(dir, 'values.yaml'), `image: docker.io/acme/vtags:${v}\n`);
      await writeFile(join(dir, 'templates', 'pod.yaml'), POD_TEMPLATE);
      await execa(requireTool('helm'), ['package', dir, '-d', join(work, 'dist')], { env: servers.helmEnv });
      await execa(
        requireTool('helm'),
        ['push', join(work, 'dist', `vtags-${v}.tgz`), servers.ociBase, '--plain-http'],
        { env: { ...process.env, ...servers.helmEnv } },
      );
    }
    const client = new RegistryClient(servers.ociHost, { hosts: { [servers.ociHost]: { plainHttp: true } } });
    const m = await client.fetchManifest('charts/vtags', 'v1.2.0');
    await client.pushManifest('charts/vtags', 'latest', m.bytes, m.mediaType);
    await closeRegistryConnections();

    const before = await readFile(defaults, 'utf8');
    const r = await sealift('add', `${servers.ociBase}/vtags`, '--plain-http');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('added release vtags: chart vtags v1.10.0 (the newest; pinned)');
    expect(r.stdout).toContain('docker.io/acme/vtags:v1.10.0 <- image');
    const now = parse(await readFile(defaults, 'utf8')) as { releases: Record<string, { chart: unknown }> };
    expect(now.releases.vtags!.chart).toEqual({ source: expect.any(String), name: 'vtags', version: 'v1.10.0' });
    await writeFile(defaults, before);

    // --devel takes the prerelease
    const d = await sealift(
      'add',
      `${servers.ociBase}/vtags`,
      '--plain-http',
      '--devel',
      '--name',
      'vtags-rc',
      '--json',
    );
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ version: 'v2.0.0-rc.1', newest: true });
    await writeFile(defaults, before);
  }, 180_000);

  it('refuses a chart that fails to render, leaving the file byte-identical', async () => {
    const original = await readFile(defaults, 'utf8');
    // cert-manager's Chart.yaml requires kubeVersion >= 1.22
    const old = original.replace(/^kubeVersion: .*$/m, 'kubeVersion: v1.19.0');
    await writeFile(defaults, old);
    try {
      const r = await sealift(
        'add',
        `${servers.ociBase}/cert-manager`,
        '--plain-http',
        '--version',
        'v1.16.1',
        '--name',
        'cm3',
        '--json',
      );
      expect(r.code, r.stdout).toBe(5);
      expect(JSON.parse(r.stdout).error.code).toBe('RENDER_FAILED');
      expect(await readFile(defaults, 'utf8')).toBe(old);
    } finally {
      await writeFile(defaults, original);
    }
  }, 120_000);

  it('a local chart directory: a local source relative to the stack dir, the version from its Chart.yaml; only the two entries are added to the file text', async () => {
    const before = await readFile(defaults, 'utf8');
    const chart = await writeListChart(join(tmp.path, 'vendor', 'webapp'), '0.4.0');
    const r = await runSealift(['add', relative(tmp.path, chart), '--stack', 'stack', '--needs', 'istiod'], {
      cwd: tmp.path,
      env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toContain('added release webapp: chart webapp 0.4.0 from source vendor (new)');
    // the list-item image is moved by its path through the list
    expect(String(r.stdout)).toContain('docker.io/acme/webapp:2.1 <- containers[0].image');
    const after = await readFile(defaults, 'utf8');
    expect(insertedText(before, after)).toEqual([
      ['  vendor:', '    type: local', '    url: ../vendor'],
      [
        '  webapp:',
        '    namespace: webapp',
        '    tier: apps',
        '    needs: [istiod]',
        '    chart: { source: vendor, name: webapp, version: 0.4.0 }',
        '',
      ],
    ]);
    // the stack reads it, and the plan finds the chart wherever sealift runs from
    const env = await loadEnvironment(stack, 'airgap');
    expect(env.sources.vendor).toEqual({ type: 'local', url: '../vendor', plainHttp: false });
    await writeFile(defaults, before);
  }, 120_000);

  it('a local .tgz (helm package): the same local source form, generate carries the archive byte for byte', async () => {
    const before = await readFile(defaults, 'utf8');
    const dir = await writeListChart(join(tmp.path, 'src', 'webapp'), '0.5.0');
    await execa(requireTool('helm'), ['package', dir, '-d', join(tmp.path, 'dist')], { env: servers.helmEnv });
    const tgz = join(tmp.path, 'dist', 'webapp-0.5.0.tgz');
    const r = await sealift('add', tgz, '--name', 'webapp-packaged', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      release: 'webapp-packaged',
      version: '0.5.0',
      newest: false,
      source: { name: 'dist', type: 'local', url: join(tmp.path, 'dist'), added: true },
    });
    const after = await readFile(defaults, 'utf8');
    expect(insertedText(before, after)).toEqual([
      ['  dist:', '    type: local', `    url: ${join(tmp.path, 'dist')}`],
      [
        '  webapp-packaged:',
        '    namespace: webapp-packaged',
        '    tier: apps',
        '    chart: { source: dist, name: webapp, version: 0.5.0 }',
        '',
      ],
    ]);
    await cp(join(PROJECT_ROOT, 'templates'), join(stack, 'templates'), { recursive: true });
    await cp(join(PROJECT_ROOT, 'charts'), join(stack, 'charts'), { recursive: true });
    const out = join(tmp.path, 'generated');
    const g = await sealift('generate', '-e', 'online', '-o', out);
    expect(g.code, g.stderr).toBe(0);
    expect((await readFile(join(out, 'charts', 'webapp-0.5.0.tgz'))).equals(await readFile(tgz))).toBe(true);
    const helmfile = await readFile(join(out, 'helmfile.yaml.gotmpl'), 'utf8');
    expect(helmfile).toContain('chart: "./charts/.unpacked/webapp-0.5.0/webapp"');
    await writeFile(defaults, before);
  }, 120_000);

  it('a .tgz into a stack whose releases are `{}`: the generated helmfile unpacks and renders it (helmfile template, no network)', async () => {
    const mini = join(tmp.path, 'mini');
    await mkdir(join(mini, 'environments'), { recursive: true });
    await cp(join(PROJECT_ROOT, 'templates'), join(mini, 'templates'), { recursive: true });
    await writeFile(join(mini, 'environments', 'default.yaml'), 'kubeVersion: v1.28.6\nsources: {}\nreleases: {}\n');
    await writeFile(join(mini, 'environments', 'online.yaml'), 'registry: null\n');
    const dir = await writeListChart(join(tmp.path, 'mini-src', 'webapp'), '0.7.0');
    await execa(requireTool('helm'), ['package', dir, '-d', join(mini, 'charts')], { env: servers.helmEnv });
    const r = await runSealift(['add', join(mini, 'charts', 'webapp-0.7.0.tgz'), '--stack', mini, '--json'], {
      env: servers.helmEnv,
    });
    expect(r.exitCode, String(r.stdout)).toBe(0);
    const env = await loadEnvironment(mini, 'online');
    expect(env.sources.charts).toEqual({ type: 'local', url: join(mini, 'charts'), plainHttp: false });
    const out = join(tmp.path, 'mini-out');
    expect((await runSealift(['generate', '-e', 'online', '--stack', mini, '-o', out])).exitCode).toBe(0);
    const t = await execa(
      requireTool('helmfile'),
      ['-f', join(out, 'helmfile.yaml.gotmpl'), '-e', 'online', 'template'],
      {
        cwd: out,
        env: { ...process.env, ...servers.helmEnv },
      },
    );
    expect(t.stdout).toContain('# Source: webapp/templates/deployment.yaml');
    expect(t.stdout).toContain('image: "docker.io/acme/webapp:2.1"');
  }, 120_000);

  it.each([
    [
      'a directory without Chart.yaml',
      async () => mkdir(join(tmp.path, 'empty'), { recursive: true }).then(() => join(tmp.path, 'empty')),
      2,
      'is a directory without a Chart.yaml',
      'Chart.yaml',
    ],
    [
      'a corrupt .tgz',
      async () => {
        const f = join(tmp.path, 'broken-1.0.0.tgz');
        await writeFile(f, Buffer.from('\x1f\x8b this is not a gzip stream'));
        return f;
      },
      2,
      'is not a readable chart archive',
      'helm package',
    ],
    [
      'a .tgz not named <name>-<version>.tgz',
      async () => {
        const dir = await writeListChart(join(tmp.path, 'renamed', 'webapp'), '0.6.0');
        await execa(requireTool('helm'), ['package', dir, '-d', join(tmp.path, 'renamed-dist')], {
          env: servers.helmEnv,
        });
        await rename(join(tmp.path, 'renamed-dist', 'webapp-0.6.0.tgz'), join(tmp.path, 'renamed-dist', 'mine.tgz'));
        return join(tmp.path, 'renamed-dist', 'mine.tgz');
      },
      2,
      'so it must be named webapp-0.6.0.tgz',
      'rename it',
    ],
    [
      'a path that does not exist',
      async () => join(tmp.path, 'nope', 'chart'),
      9,
      'no such chart directory or file',
      'Check the path',
    ],
  ])(
    'refuses %s, naming the file and what to do, leaving the file byte-identical',
    async (_what, make, code, message, hint) => {
      const target = await make();
      const before = await readFile(defaults);
      const r = await sealift('add', target, '--json');
      expect(r.code, r.stdout + r.stderr).toBe(code);
      const error = JSON.parse(r.stdout).error as { message: string; hint: string };
      expect(error.message).toContain(target.split('/').pop());
      expect(error.message).toContain(message);
      expect(error.hint).toContain(hint);
      expect((await readFile(defaults)).equals(before)).toBe(true);
    },
    120_000,
  );
});
