import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listEnvironments, loadEnvironment } from '../../src/config/index.ts';
import { isSealiftError, type SealiftError } from '../../src/errors.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';

let stack: string;

beforeEach(async () => {
  stack = await mkdtemp(join(tmpdir(), 'sealift-config-'));
  await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
});
afterEach(async () => rm(stack, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<SealiftError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isSealiftError(e)) throw new Error(`expected a SealiftError, got ${String(e)}`);
  return e;
}

/** line number (1-based) of the first line of `file` containing `text` */
async function lineOf(file: string, text: string): Promise<number> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const i = lines.findIndex((l) => l.includes(text));
  if (i < 0) throw new Error(`${text} not in ${file}`);
  return i + 1;
}

describe('the shipped environments', () => {
  it('lists online and airgap, not default', async () => {
    expect(await listEnvironments(PROJECT_ROOT)).toEqual(['airgap', 'online']);
  });

  it('airgap: plain-HTTP private registry, charts from the site', async () => {
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
    expect(env.registry).toEqual({ host: '10.61.3.31:35000', plainHttp: true, scheme: 'host-swap' });
    expect(env.chartsFrom).toBe('site');
    expect(env.kubeVersion).toBe('v1.28.6');
    expect(env.files.map((f) => f.split('/').pop())).toEqual(['default.yaml', 'airgap.yaml']);
  });

  it('online: no registry, upstream sources', async () => {
    const env = await loadEnvironment(PROJECT_ROOT, 'online');
    expect(env.registry).toBeNull();
    expect(env.sources.kserve).toEqual({ type: 'oci', url: 'oci://ghcr.io/kserve/charts', plainHttp: false });
    expect(env.releases['cert-manager']?.values).toEqual({ crds: { enabled: true } });
  });
});

describe('merging', () => {
  it('an overlay overrides one source and keeps the rest', async () => {
    const overlay = join(stack, 'mirror.yaml');
    await writeFile(overlay, 'sources:\n  istio:\n    url: https://mirror.example.com/istio\n');
    const env = await loadEnvironment(stack, 'online', { overlays: [overlay] });
    expect(env.sources.istio).toEqual({ type: 'repo', url: 'https://mirror.example.com/istio', plainHttp: false });
    expect(env.sources.jetstack?.url).toBe('oci://quay.io/jetstack/charts');
  });

  it('an environment can disable a release and replace a list', async () => {
    await writeFile(
      join(stack, 'environments', 'small.yaml'),
      'releases:\n  kserve:\n    enabled: false\n  net-istio:\n    needs: [knative-serving]\n',
    );
    const env = await loadEnvironment(stack, 'small');
    expect(env.releases.kserve?.enabled).toBe(false);
    expect(env.releases['net-istio']?.needs).toEqual(['knative-serving']);
  });
});

describe('bad input names file, line and key', () => {
  it('unknown environment: usage error listing the known ones', async () => {
    const e = await failure(loadEnvironment(stack, 'prod'));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain('unknown environment "prod"');
    expect(e.hint).toContain('airgap, online');
  });

  it('YAML syntax error', async () => {
    const file = join(stack, 'environments', 'broken.yaml');
    await writeFile(file, 'registry:\n  host: 10.0.0.1:5000\n  plainHttp: [true\nchartsFrom: site\n');
    const e = await failure(loadEnvironment(stack, 'broken'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/broken\.yaml:[34]:\d+: YAML syntax error/);
  });

  it('unknown top-level key', async () => {
    const file = join(stack, 'environments', 'typo.yaml');
    await writeFile(file, '# a comment\nregistry: null\nchartFrom: site\n');
    const e = await failure(loadEnvironment(stack, 'typo'));
    expect(e.message).toBe(`${file}:3: chartFrom: unknown key "chartFrom"`);
    expect(e.details).toMatchObject({ line: 3, key: 'chartFrom' });
  });

  it('an error in default.yaml points into default.yaml', async () => {
    const file = join(stack, 'environments', 'default.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('    tier: platform\n', '    tier: platform\n    tire: oops\n'));
    const e = await failure(loadEnvironment(stack, 'online'));
    expect(e.message).toContain(
      `default.yaml:${await lineOf(file, 'tire: oops')}: releases.cert-manager.tire: unknown key "tire"`,
    );
  });

  // an environment file `bad.yaml` with this text -> the start of the error message
  it.each([
    {
      what: 'unknown key inside a release (helmfile has no dependsOn)',
      text: 'releases:\n  kserve:\n    dependsOn: [istiod]\n',
      message: 'bad.yaml:3: releases.kserve.dependsOn: unknown key "dependsOn"',
    },
    {
      what: 'wrong type',
      text: 'registry:\n  host: 10.0.0.1:5000\n  plainHttp: "yes"\n',
      message: 'bad.yaml:3: registry.plainHttp: ',
    },
    {
      what: 'needs naming a release that does not exist',
      text: 'releases:\n  kserve:\n    needs:\n      - cert-manager\n      - knative\n',
      message: 'bad.yaml:5: releases.kserve.needs[1]: needs "knative", which is not a release',
    },
    {
      what: 'a dependency cycle, at the edge this file adds',
      text: 'releases:\n  istio-base:\n    needs: [istio-ingressgateway]\n',
      message: 'bad.yaml:3: releases.istio-base.needs[0]: dependency cycle: ',
    },
    {
      what: 'a source that is not defined',
      text: 'releases:\n  istiod:\n    chart: { source: istio-mirror }\n',
      message: 'bad.yaml:3: releases.istiod.chart.source: names source "istio-mirror", which is not defined',
    },
    {
      what: 'both chart and manifests',
      text: 'releases:\n  net-istio:\n    chart: { source: istio, name: x, version: 1.0.0 }\n',
      message: 'bad.yaml:2: releases.net-istio: a release needs exactly one of "chart" or "manifests"',
    },
    {
      what: 'an image knob that is not an image name',
      text: 'releases:\n  istiod:\n    imageKnobs:\n      global.hub: "docker.io/Istio Hub"\n',
      message: 'bad.yaml:4: releases.istiod.imageKnobs.global.hub: "docker.io/Istio Hub" is not an image name',
    },
    {
      what: 'a registry given as a URL',
      text: 'registry:\n  host: http://10.0.0.1:5000\n',
      message: 'bad.yaml:2: registry.host: must be HOST[:PORT] without a scheme',
    },
    {
      what: 'an unknown naming scheme',
      text: 'registry:\n  host: 10.0.0.1:5000\n  scheme: flat\n',
      message: 'bad.yaml:3: registry.scheme: Invalid option: expected one of "host-swap"|"scoped"',
    },
    {
      what: 'a chart repo source with a manifests release',
      text: 'releases:\n  net-istio:\n    manifests: { source: istio }\n',
      message:
        'bad.yaml:3: releases.net-istio.manifests.source: source "istio" has type repo, but a manifests release needs url',
    },
  ])('$what', async ({ text, message }) => {
    const file = join(stack, 'environments', 'bad.yaml');
    await writeFile(file, text);
    const e = await failure(loadEnvironment(stack, 'bad'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message.startsWith(`${file}:`) || e.message.startsWith('environments/bad.yaml:')).toBe(true);
    expect(e.message).toContain(message);
    expect(e.hint).toBeTruthy();
  });

  it('the cycle is shown as a chain of needs', async () => {
    await writeFile(
      join(stack, 'environments', 'cycle.yaml'),
      'releases:\n  istio-base:\n    needs: [istio-ingressgateway]\n',
    );
    const e = await failure(loadEnvironment(stack, 'cycle'));
    expect(e.message).toMatch(
      /(istio-base needs istio-ingressgateway needs istiod needs istio-base|istiod needs istio-base needs istio-ingressgateway needs istiod|istio-ingressgateway needs istiod needs istio-base needs istio-ingressgateway)$/,
    );
  });
});
