// `sealift add` against loopback chart servers (a Helm repository and an OCI registry holding the
// real fixture charts), on a copy of the stack: the release is added with comments and key order
// kept, the version pinned, the images reported for the airgap environment; every refusal leaves
// environments/default.yaml byte for byte as it was.
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { runSealift } from '../support/cli.ts';
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

  it('an OCI chart whose tags helm cannot order (v-prefixed) asks for --version, leaving the file byte-identical', async () => {
    const before = await readFile(defaults);
    const r = await sealift('add', `${servers.ociBase}/cert-manager`, '--plain-http', '--name', 'cm4', '--json');
    expect(r.code).toBe(9);
    expect(JSON.parse(r.stdout).error.hint).toContain('--version');
    expect((await readFile(defaults)).equals(before)).toBe(true);
  }, 120_000);

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

  it('refuses a local chart (no source the site helmfile could name), leaving the file byte-identical', async () => {
    const before = await readFile(defaults);
    const r = await sealift('add', join(FIXTURES, 'charts', 'cert-manager-v1.16.1.tgz'), '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.hint).toContain('publish it to a chart repository');
    expect((await readFile(defaults)).equals(before)).toBe(true);
  });
});
