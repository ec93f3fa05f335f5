// `sealift images` on the real fixture charts and release files: scan straight from the .tgz files,
// and whole environments rendered from loopback chart servers (Helm repo, OCI registry, file server).
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { tempDir } from '../support/process.ts';
import { runSealift, SEALIFT_BIN } from '../support/cli.ts';

const CHARTS = join(FIXTURES, 'charts');

let tmp: Awaited<ReturnType<typeof tempDir>>;
let helmEnv: Record<string, string> = {};

async function sealift(args: string[], extraEnv: Record<string, string> = {}) {
  const r = await runSealift(args, { env: { ...helmEnv, SEALIFT_CACHE_DIR: join(tmp.path, 'cache'), ...extraEnv } });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

interface ScanJson {
  ok: boolean;
  images: {
    reference: string;
    why: { kind: string; name: string; path: string; via: string; rule?: string }[];
    knobless?: { rule: string };
  }[];
  excluded: { value: string; reason: string; origin: { rule?: string; path: string } }[];
}

async function scan(...args: string[]): Promise<ScanJson> {
  const r = await sealift(['images', 'scan', ...args, '--json']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return JSON.parse(r.stdout) as ScanJson;
}

const refsOf = (s: ScanJson) => s.images.map((i) => i.reference);

/** The images of the stack that `grep image:` misses or gets wrong (../shared/reference/kserve-stack.md). */
const HIDDEN = {
  configMapJson: [
    'docker.io/kserve/agent:v0.15.2',
    'docker.io/kserve/router:v0.15.2',
    'docker.io/kserve/storage-initializer:v0.15.2',
  ],
  splitKeys: ['docker.io/kserve/art-explainer:v0.15.2'],
  servingRuntimes: [
    'docker.io/kserve/sklearnserver:v0.15.2',
    'docker.io/kserve/xgbserver:v0.15.2',
    'docker.io/kserve/lgbserver:v0.15.2',
    'docker.io/kserve/pmmlserver:v0.15.2',
    'docker.io/kserve/paddleserver:v0.15.2',
    'docker.io/kserve/huggingfaceserver:v0.15.2',
    'docker.io/kserve/huggingfaceserver:v0.15.2-gpu',
    'docker.io/seldonio/mlserver:1.5.0',
    'docker.io/tensorflow/serving:2.6.2',
    'docker.io/pytorch/torchserve-kfs:0.9.0',
    'nvcr.io/nvidia/tritonserver:23.05-py3',
  ],
  args: ['quay.io/jetstack/cert-manager-acmesolver:v1.16.1'],
  injected: ['docker.io/istio/proxyv2:1.23.2'],
  configKey: [
    'gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:56142833a9f87213e055045f0ea59c3f00f024d095c052f7669f7b9d77c55e54',
  ],
};
const ALL_HIDDEN = Object.values(HIDDEN).flat();

/** Things that look like images in the manifests but are not, or that do not exist. */
const TRAPS = [
  /(^|\/)auto(:|$)/,
  /\{\{|\}\}/,
  /library\/proxyv2/,
  /kserve\/agent:latest/,
  /kserve\/router:latest/,
  /kserve\/art-explainer:latest/,
  /kserve\/kserve:latest/,
  /kserve\/(logger|batcher)/,
  /istio\/(citadel|galley)/,
];

function expectNoTraps(refs: string[]): void {
  for (const t of TRAPS)
    expect(
      refs.filter((r) => t.test(r)),
      String(t),
    ).toEqual([]);
}

beforeAll(async () => {
  tmp = await tempDir('sealift-images-test-');
});
afterAll(async () => {
  await tmp[Symbol.asyncDispose]();
});

describe('images scan on the fixture charts', () => {
  it('kserve: ConfigMap JSON, split repository/version keys and every serving runtime; no example-block image', async () => {
    const s = await scan(join(CHARTS, 'kserve-v0.15.2.tgz'));
    const refs = refsOf(s);
    expect(refs).toEqual(
      expect.arrayContaining([
        ...HIDDEN.configMapJson,
        ...HIDDEN.splitKeys,
        ...HIDDEN.servingRuntimes,
        'docker.io/kserve/kserve-controller:v0.15.2',
        'quay.io/brancz/kube-rbac-proxy:v0.18.0',
      ]),
    );
    expectNoTraps(refs);
    const agent = s.images.find((i) => i.reference === 'docker.io/kserve/agent:v0.15.2')!;
    // one image, three uses: agent, batcher and logger keys of inferenceservice-config
    expect(agent.why.map((w) => `${w.kind} ${w.name} ${w.path}`).sort()).toEqual([
      'ConfigMap inferenceservice-config data.agent.image',
      'ConfigMap inferenceservice-config data.batcher.image',
      'ConfigMap inferenceservice-config data.logger.image',
    ]);
    expect(s.images.find((i) => i.reference === 'docker.io/kserve/art-explainer:v0.15.2')!.why[0]!.path).toBe(
      'data.explainers.art.{image,defaultImageVersion}',
    );
    // the example block is read, and every image in it is explained away
    const fromExample = s.excluded.filter((x) => x.origin.path.startsWith('data._example'));
    expect(fromExample.map((x) => x.value)).toEqual(
      expect.arrayContaining(['kserve/agent:latest', 'kserve/router:latest', 'kserve/art-explainer']),
    );
    expect(fromExample.every((x) => x.origin.rule === 'configmap-example-blocks')).toBe(true);
    // knob-less, listed, and marked
    expect(s.images.find((i) => i.reference === 'docker.io/kserve/storage-initializer:latest')?.knobless?.rule).toBe(
      'kserve-localmodel-job-image',
    );
  });

  it('istiod: the injected proxy composed from the injector values; no template markers; busybox knob-less', async () => {
    const s = await scan(join(CHARTS, 'istiod-1.23.2.tgz'));
    expect(refsOf(s).sort()).toEqual([
      'docker.io/istio/pilot:1.23.2',
      'docker.io/istio/proxyv2:1.23.2',
      'docker.io/library/busybox:1.28',
    ]);
    const proxy = s.images.find((i) => i.reference === 'docker.io/istio/proxyv2:1.23.2')!;
    expect(proxy.why[0]).toMatchObject({
      kind: 'ConfigMap',
      name: 'istio-sidecar-injector',
      via: 'rule',
      rule: 'istio-injected-proxy',
    });
    expect(s.images.find((i) => i.reference.includes('busybox'))?.knobless?.rule).toBe('istio-grpc-bootstrap-init');
    expect(s.excluded.filter((x) => x.value === '{{ .ProxyImage }}').length).toBeGreaterThan(0);
    expect(
      s.excluded.filter((x) => x.value === '{{ .ProxyImage }}').every((x) => /template placeholder/.test(x.reason)),
    ).toBe(true);
  });

  it('istiod with --set: the injected proxy follows global.hub and global.tag', async () => {
    const s = await scan(
      join(CHARTS, 'istiod-1.23.2.tgz'),
      '--set',
      'global.hub=mirror.example.com/istio',
      '--set',
      'global.tag=1.23.2-patched',
    );
    expect(refsOf(s)).toEqual(
      expect.arrayContaining([
        'mirror.example.com/istio/proxyv2:1.23.2-patched',
        'mirror.example.com/istio/pilot:1.23.2-patched',
      ]),
    );
  });

  it('gateway: `image: auto` is not an image, and says why', async () => {
    const s = await scan(join(CHARTS, 'gateway-1.23.2.tgz'));
    expect(refsOf(s)).toEqual([]);
    expect(s.excluded).toEqual([
      expect.objectContaining({ value: 'auto', origin: expect.objectContaining({ rule: 'istio-image-auto' }) }),
    ]);
  });

  it('cert-manager: the ACME solver image in the controller args, and the startupapicheck hook job', async () => {
    const s = await scan(join(CHARTS, 'cert-manager-v1.16.1.tgz'), '-f', await valuesFile('crds:\n  enabled: true\n'));
    expect(refsOf(s).sort()).toEqual([
      'quay.io/jetstack/cert-manager-acmesolver:v1.16.1',
      'quay.io/jetstack/cert-manager-cainjector:v1.16.1',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      'quay.io/jetstack/cert-manager-startupapicheck:v1.16.1',
      'quay.io/jetstack/cert-manager-webhook:v1.16.1',
    ]);
    expect(s.images.find((i) => i.reference.includes('acmesolver'))!.why[0]).toMatchObject({
      via: 'arg',
      kind: 'Deployment',
    });
  });

  it('Knative release files: queue-proxy from the config-deployment key and the Image resource, all pinned by digest', async () => {
    const s = await scan(join(FIXTURES, 'releases', 'knative', 'serving', 'knative-v1.15.2'));
    const refs = refsOf(s);
    expect(refs).toEqual(expect.arrayContaining(HIDDEN.configKey));
    expect(refs.every((r) => /^gcr\.io\/knative-releases\/.+@sha256:[0-9a-f]{64}$/.test(r))).toBe(true);
    const queue = s.images.find((i) => i.reference === HIDDEN.configKey[0])!;
    expect(queue.why.map((w) => `${w.kind} ${w.name} ${w.path}`).sort()).toEqual([
      'ConfigMap config-deployment data.queue-sidecar-image',
      'Image queue-proxy spec.image',
    ]);
  });

  it('CRD-only charts list nothing, and the knative-operator chart lists its two images', async () => {
    expect(refsOf(await scan(join(CHARTS, 'kserve-crd-v0.15.2.tgz')))).toEqual([]);
    expect(refsOf(await scan(join(CHARTS, 'knative-operator-1.15.7.tgz'))).sort()).toEqual([
      'gcr.io/knative-releases/knative.dev/operator/cmd/operator:v1.15.7',
      'gcr.io/knative-releases/knative.dev/operator/cmd/webhook:v1.15.7',
    ]);
  });

  it('--rules adds your own rule files to the shipped ones; a bad one names its file and line', async () => {
    const dir = join(tmp.path, 'my-rules');
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'site.yaml'),
      'rules:\n  - id: no-mlserver\n    description: this site serves no MLServer models\n    match: { kind: ClusterServingRuntime }\n    exclude: { value: "docker.io/seldonio/*" }\n',
    );
    const s = await scan(join(CHARTS, 'kserve-v0.15.2.tgz'), '--rules', dir);
    expect(refsOf(s)).not.toContain('docker.io/seldonio/mlserver:1.5.0');
    expect(s.excluded.find((x) => x.origin.rule === 'no-mlserver')?.reason).toContain(
      'this site serves no MLServer models',
    );
    // the shipped rules still apply
    expect(s.images.find((i) => i.reference === 'docker.io/kserve/storage-initializer:latest')?.knobless?.rule).toBe(
      'kserve-localmodel-job-image',
    );

    await writeFile(join(dir, 'site.yaml'), 'rules:\n  - id: broken\n    description: d\n    exclude: { vaule: x }\n');
    const bad = await sealift(['images', 'scan', join(CHARTS, 'kserve-v0.15.2.tgz'), '--rules', dir]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain(`${join(dir, 'site.yaml')}:4: rules.0.exclude`);
  });

  it('reads manifests on stdin (`helm template ... | sealift images scan -`)', async () => {
    const manifests = await readFile(
      join(FIXTURES, 'releases', 'knative', 'net-istio', 'knative-v1.15.1', 'net-istio.yaml'),
      'utf8',
    );
    const r = await execa(process.execPath, [SEALIFT_BIN, 'images', 'scan', '-', '--json'], {
      cwd: PROJECT_ROOT,
      reject: false,
      input: manifests,
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const s = JSON.parse(String(r.stdout)) as ScanJson;
    expect(refsOf(s).map((x) => x.replace(/@.*/, ''))).toEqual([
      'gcr.io/knative-releases/knative.dev/net-istio/cmd/controller',
      'gcr.io/knative-releases/knative.dev/net-istio/cmd/webhook',
    ]);
    expect(s.images[0]!.why[0]).toMatchObject({ kind: 'Deployment', name: 'net-istio-controller' });
  });

  it('prints people-readable lines with where each image comes from', async () => {
    const r = await sealift(['images', 'scan', join(CHARTS, 'cert-manager-v1.16.1.tgz')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'quay.io/jetstack/cert-manager-acmesolver:v1.16.1\n    <- cert-manager: Deployment default/cert-manager spec.template.spec.containers[0].args[',
    );
  });

  it('a chart whose own values schema rejects its values (as Istio gateway 1.23 with newer helm) still renders, with a warning', async () => {
    const chart = join(tmp.path, 'strict-schema');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: strict-schema\nversion: 0.1.0\n');
    await writeFile(join(chart, 'values.yaml'), 'image: example.com/app:1\n');
    await writeFile(
      join(chart, 'values.schema.json'),
      JSON.stringify({ type: 'object', additionalProperties: false, properties: {} }),
    );
    await writeFile(
      join(chart, 'templates', 'pod.yaml'),
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: c, image: {{ .Values.image | quote }} }] }\n',
    );
    const r = await sealift(['images', 'scan', chart]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('example.com/app:1');
    expect(r.stderr).toContain("the chart's values schema rejects the values");
    expect(r.stderr).toContain('rendered with --skip-schema-validation');
  });

  it('fails clearly: a missing target (usage, exit 2) and a chart helm cannot render (exit 5, with argv and stderr)', async () => {
    const missing = await sealift(['images', 'scan', join(tmp.path, 'nope'), '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout).error.code).toBe('USAGE');
    const bad = await sealift([
      'images',
      'scan',
      join(CHARTS, 'cert-manager-v1.16.1.tgz'),
      '--kube-version',
      '1.19.0',
      '--json',
    ]);
    expect(bad.code).toBe(5);
    const err = JSON.parse(bad.stdout).error;
    expect(err.code).toBe('RENDER_FAILED');
    expect(err.argv).toEqual(expect.arrayContaining(['template', '--kube-version', '1.19.0']));
    expect(err.exitCode).toBe(1);
    expect(err.stderrTail).toContain('kubeVersion');
  });
});

async function valuesFile(text: string): Promise<string> {
  const f = join(tmp.path, `values-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(f, text);
  return f;
}

describe('images -e <env> with charts served from loopback', () => {
  let servers: ChartServers;
  let overlay: string;

  beforeAll(async () => {
    servers = await startChartServers();
    helmEnv = servers.helmEnv;
    overlay = join(tmp.path, 'sources.yaml');
    await writeFile(overlay, await servers.sourcesOverlayYaml());
  });
  afterAll(async () => {
    await servers?.stop();
  });

  it('scans charts from a Helm repository (--repo) and an OCI registry (oci://, --plain-http)', async () => {
    const repo = await scan('gateway', '--repo', servers.helmRepoUrl, '--version', '1.23.2', '--explain');
    expect(repo.images).toEqual([]);
    expect(repo.excluded.map((x) => x.value)).toEqual(['auto']);
    const oci = await scan(`${servers.ociBase}/cert-manager`, '--version', 'v1.16.1', '--plain-http');
    expect(refsOf(oci)).toContain(HIDDEN.args[0]);
  });

  it('writes one list per release and a lock: the hidden images in, the traps out', async () => {
    const out = join(tmp.path, 'lists-online');
    const r = await sealift(['images', '-e', 'online', '--overlay', overlay, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as {
      ok: boolean;
      images: number;
      timing: { sumHelmMs: number; maxHelmMs: number };
    };
    expect(res.ok).toBe(true);
    expect((await readdir(join(out, 'online'))).sort()).toEqual(
      [
        'cert-manager',
        'istio-base',
        'istio-ingressgateway',
        'istiod',
        'knative-serving',
        'knative-serving-crds',
        'kserve',
        'kserve-crd',
        'net-istio',
      ]
        .map((n) => `${n}.txt`)
        .sort(),
    );
    const kserve = await readFile(join(out, 'online', 'kserve.txt'), 'utf8');
    expect(kserve.split('\n')[0]).toMatch(/^# Generated by `sealift images -e online`/);
    const listed = kserve.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(listed).toEqual([...listed].sort());
    expect(new Set(listed).size).toBe(listed.length);

    const lock = JSON.parse(await readFile(join(out, 'online.lock.json'), 'utf8')) as {
      version: number;
      environment: string;
      images: {
        reference: string;
        releases: string[];
        why: { release: string; kind: string; path: string }[];
        knobless?: object;
      }[];
    };
    expect(lock).toMatchObject({ version: 1, environment: 'online' });
    const refs = lock.images.map((i) => i.reference);
    expect(refs).toEqual(expect.arrayContaining(ALL_HIDDEN));
    expectNoTraps(refs);
    expect(res.images).toBe(refs.length);
    expect(lock.images.find((i) => i.reference === HIDDEN.injected[0])).toMatchObject({ releases: ['istiod'] });
    expect(lock.images.find((i) => i.reference === HIDDEN.args[0])!.why[0]).toMatchObject({
      release: 'cert-manager',
      kind: 'Deployment',
    });
    expect(
      lock.images
        .filter((i) => i.knobless)
        .map((i) => i.reference)
        .sort(),
    ).toEqual(['docker.io/kserve/storage-initializer:latest', 'docker.io/library/busybox:1.28']);
    // every list line is in the lock, and the lock has nothing else
    const all = new Set<string>();
    for (const f of await readdir(join(out, 'online')))
      for (const l of (await readFile(join(out, 'online', f), 'utf8')).split('\n'))
        if (l && !l.startsWith('#')) all.add(l);
    expect([...all].sort()).toEqual([...refs].sort());
  });

  it('the committed imagelists/ are what rendering gives now (the check users run in CI: --all --check)', async () => {
    const r = await sealift(['images', '--all', '--check', '--overlay', overlay]);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('imagelists for airgap are up to date');
    expect(r.stdout).toContain('imagelists for online are up to date');
    const j = await sealift(['images', '--all', '--check', '--overlay', overlay, '--json']);
    const res = JSON.parse(j.stdout) as { ok: boolean; environments: { environment: string; ok: boolean }[] };
    expect(res).toMatchObject({
      ok: true,
      environments: [
        { environment: 'airgap', ok: true },
        { environment: 'online', ok: true },
      ],
    });
  });

  it('--check round trip: clean, then changed values give a diff and exit 7, and write nothing', async () => {
    const out = join(tmp.path, 'lists-check');
    expect((await sealift(['images', '-e', 'airgap', '--overlay', overlay, '--out', out])).code).toBe(0);
    const clean = await sealift(['images', '-e', 'airgap', '--overlay', overlay, '--out', out, '--check']);
    expect(clean.code).toBe(0);

    const changed = join(tmp.path, 'changed.yaml');
    await writeFile(
      changed,
      'releases:\n  kserve:\n    values:\n      kserve:\n        agent:\n          tag: v0.15.3\n',
    );
    const before = await readFile(join(out, 'airgap', 'kserve.txt'), 'utf8');
    const checkChanged = [
      'images',
      '-e',
      'airgap',
      '--overlay',
      overlay,
      '--overlay',
      changed,
      '--out',
      out,
      '--check',
    ];
    const r = await sealift(checkChanged);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain(`--- ${join(out, 'airgap', 'kserve.txt')}`);
    expect(r.stdout).toContain('- docker.io/kserve/agent:v0.15.2');
    expect(r.stdout).toContain('+ docker.io/kserve/agent:v0.15.3');
    expect(await readFile(join(out, 'airgap', 'kserve.txt'), 'utf8')).toBe(before);

    const j = await sealift([...checkChanged, '--json']);
    expect(j.code).toBe(7);
    const diff = JSON.parse(j.stdout) as {
      ok: boolean;
      differences: { file: string; added: string[]; removed: string[] }[];
    };
    expect(diff.ok).toBe(false);
    expect(diff.differences.find((d) => d.file.endsWith('kserve.txt'))).toMatchObject({
      added: ['docker.io/kserve/agent:v0.15.3'],
      removed: ['docker.io/kserve/agent:v0.15.2'],
    });
  });

  it('extraImages and excludeImages from the environment file, with a why that names it', async () => {
    const stack = join(tmp.path, 'stack-extra');
    await mkdir(stack, { recursive: true });
    await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
    const envFile = join(stack, 'environments', 'online.yaml');
    await writeFile(
      envFile,
      `${await readFile(envFile, 'utf8')}releases:\n  kserve:\n    extraImages: [example.com/tools/debug:1]\n    excludeImages: ["docker.io/kserve/*server:*"]\n`,
    );
    const r = await sealift(['images', '-e', 'online', '--stack', stack, '--overlay', overlay]);
    expect(r.code, r.stderr).toBe(0);
    const listed = (await readFile(join(stack, 'imagelists', 'online', 'kserve.txt'), 'utf8')).split('\n');
    expect(listed).toContain('example.com/tools/debug:1');
    expect(listed.filter((l) => /kserve\/\w+server:/.test(l))).toEqual([]);
    expect(listed).toContain('docker.io/seldonio/mlserver:1.5.0'); // not matched by the glob
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'online.lock.json'), 'utf8')) as {
      images: { reference: string; why: { kind: string; path: string }[] }[];
    };
    expect(lock.images.find((i) => i.reference === 'example.com/tools/debug:1')!.why).toEqual([
      expect.objectContaining({ kind: 'Environment', name: 'online.yaml', path: 'releases.kserve.extraImages[0]' }),
    ]);
  });

  it('--explain lists what was not taken for an image in each release, with the reason', async () => {
    const r = await sealift([
      'images',
      '-e',
      'online',
      '--overlay',
      overlay,
      '--out',
      join(tmp.path, 'lists-explain'),
      '--explain',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as {
      releases: { release: string; excluded: { value: string; reason: string }[]; skipped: { kind: string }[] }[];
    };
    const kserve = res.releases.find((x) => x.release === 'kserve')!;
    expect(kserve.excluded.find((x) => x.value === 'kserve/agent:latest')?.reason).toContain(
      'configmap-example-blocks',
    );
    const gateway = res.releases.find((x) => x.release === 'istio-ingressgateway')!;
    expect(gateway.excluded.map((x) => x.value)).toEqual(['auto']);
    expect(
      res.releases.find((x) => x.release === 'kserve-crd')!.skipped.every((x) => x.kind === 'CustomResourceDefinition'),
    ).toBe(true);
  });

  it('a chart version that does not exist fails naming the chart and writes nothing', async () => {
    const out = join(tmp.path, 'lists-bad');
    const bad = join(tmp.path, 'bad-version.yaml');
    await writeFile(bad, 'releases:\n  kserve:\n    chart: { source: kserve, name: kserve, version: v9.9.9 }\n');
    const r = await sealift(['images', '-e', 'online', '--overlay', overlay, '--overlay', bad, '--out', out, '--json']);
    expect(r.code).toBe(6);
    const err = JSON.parse(r.stdout).error;
    expect(err.message).toContain('helm pull');
    expect(err.message).toContain('v9.9.9');
    expect(err.argv).toEqual(expect.arrayContaining(['pull', '--version', 'v9.9.9']));
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });
});
