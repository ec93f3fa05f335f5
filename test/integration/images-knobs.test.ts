// `images scan --airgap-values` on every real fixture chart: the values it prints, passed to
// `helm template -f` (real helm), move every runtime image into the site registry with its path,
// tag and digest kept, except the ones it reports knob-less; nothing else stays upstream.
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteReference } from '../../src/oci/naming.ts';
import { formatImageReference, normalizeImageReference } from '../../src/oci/reference.ts';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { FIXTURES } from '../support/chart-servers.ts';
import { runSealift, SEALIFT_BIN } from '../support/cli.ts';
import { LIST_CHART_DIGEST, LIST_CHART_IMAGES, writeListChart } from '../support/list-chart.ts';
import { tempDir } from '../support/process.ts';

const REG = '10.61.3.31:35000'; // a config value, never contacted
const KUBE = 'v1.28.6';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('sealift-knobs-test-');
});
afterAll(async () => {
  await tmp?.[Symbol.asyncDispose]();
});

interface AirgapJson {
  ok: boolean;
  values: Record<string, unknown>;
  knobless: string[];
  knobs: { path: string; upstream: string; images: string[] }[];
  images: { reference: string; knobs: string[]; knobless?: { description: string } }[];
  renders: number;
}

async function airgapValues(chart: string, ...extra: string[]): Promise<AirgapJson> {
  const r = await runSealift(['images', 'scan', chart, '--airgap-values', REG, ...extra, '--json'], {
    env: { SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
  });
  expect(r.exitCode, String(r.stderr) + String(r.stdout)).toBe(0);
  return JSON.parse(String(r.stdout)) as AirgapJson;
}

/** `helm template -f <values>`, then `sealift images scan -` of what helm printed. */
async function imagesAfter(chart: string, values: Record<string, unknown>, name: string): Promise<string[]> {
  const file = join(tmp.path, `${name}-airgap.yaml`);
  await writeFile(file, JSON.stringify(values));
  const helm = await execa(requireTool('helm'), ['template', name, chart, '--kube-version', KUBE, '-f', file]);
  const scan = await execa(process.execPath, [SEALIFT_BIN, 'images', 'scan', '-', '--json'], {
    input: helm.stdout,
    env: { CI: 'true' },
  });
  return (JSON.parse(scan.stdout) as { images: { reference: string }[] }).images.map((i) => i.reference);
}

const charts = async () => [
  ...(await readdir(join(FIXTURES, 'charts'))).map((f) => join(FIXTURES, 'charts', f)),
  ...(await readdir(join(FIXTURES, 'charts-extra')))
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(FIXTURES, 'charts-extra', f)),
];

const report: string[] = [];

describe('images scan --airgap-values on the fixture charts, checked by helm template', () => {
  it('every runtime image of every chart names the site registry (path, tag, digest kept) or is reported knob-less', async () => {
    const all = await charts();
    expect(all.length).toBe(15);
    for (const chart of all) {
      const name = chart
        .split('/')
        .pop()!
        .replace(/-v?\d+\.\d+\.\d+\.tgz$/, '');
      const a = await airgapValues(chart);
      const after = await imagesAfter(chart, a.values, name);
      const upstream = a.images.map((i) => i.reference);
      const moved = a.images.filter((i) => !i.knobless);
      const site = (ref: string) => formatImageReference(siteReference(normalizeImageReference(ref), REG, 'host-swap'));
      // what the render now pulls: exactly the moved images under REG, and the knob-less ones as they were
      expect(after.sort(), name).toEqual([...moved.map((i) => site(i.reference)), ...a.knobless].sort());
      expect(after.filter((r) => !r.startsWith(`${REG}/`)).sort(), name).toEqual([...a.knobless].sort());
      for (const i of moved) expect(i.knobs.length, `${name} ${i.reference}`).toBeGreaterThan(0);
      expect(a.renders, name).toBeLessThanOrEqual(upstream.length === 0 ? 0 : 3);
      report.push(
        `${name}: ${upstream.length} images, ${moved.length} moved, ${a.knobless.length} knob-less${a.images
          .filter((i) => i.knobless)
          .map((i) => `\n    ${i.reference}: ${i.knobless!.description}`)
          .join('')}`,
      );
    }
    console.log(`knob inference on the fixtures:\n  ${report.join('\n  ')}`);
  }, 600_000);

  it('scoped naming: the values keep the upstream host as the first path component (bitnami global registry, Istio hub)', async () => {
    const redis = join(FIXTURES, 'charts-extra', 'redis-20.6.1.tgz');
    const a = await airgapValues(redis, '--scheme', 'scoped');
    expect(a.values).toEqual({
      global: { imageRegistry: `${REG}/docker.io`, security: { allowInsecureImages: true } },
    });
    expect(await imagesAfter(redis, a.values, 'redis')).toEqual([`${REG}/docker.io/bitnami/redis:7.4.1-debian-12-r3`]);

    const istiod = join(FIXTURES, 'charts', 'istiod-1.23.2.tgz');
    const b = await airgapValues(istiod, '--scheme', 'scoped');
    expect((await imagesAfter(istiod, b.values, 'istiod')).sort()).toEqual([
      `${REG}/docker.io/istio/pilot:1.23.2`,
      `${REG}/docker.io/istio/proxyv2:1.23.2`,
      'docker.io/library/busybox:1.28',
    ]);
    expect(b.knobless).toEqual(['docker.io/library/busybox:1.28']);
  }, 120_000);

  it('the human output is a values file with what it moves and what it cannot, as comments', async () => {
    const r = await runSealift(
      ['images', 'scan', join(FIXTURES, 'charts', 'istiod-1.23.2.tgz'), '--airgap-values', REG],
      {
        env: { SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
      },
    );
    expect(r.exitCode).toBe(0);
    const out = String(r.stdout);
    expect(out).toContain('#   moved: docker.io/istio/proxyv2:1.23.2 <- defaults.global.hub');
    expect(out).toMatch(/#   knob-less: docker\.io\/library\/busybox:1\.28: .*grpc-simple/);
    expect(out).toContain('certs.d/docker.io/hosts.toml');
    expect(out.endsWith(`defaults:\n  global:\n    hub: ${REG}/istio`)).toBe(true);
  }, 60_000);

  it('a chart whose images are list items: the printed values file, given to helm template -f, moves both (tag and digest kept), the list written whole', async () => {
    const chart = await writeListChart(join(tmp.path, 'webapp'), '0.4.0');
    const r = await runSealift(['images', 'scan', chart, '--airgap-values', REG], {
      env: { SEALIFT_CACHE_DIR: join(tmp.path, 'cache') },
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const text = String(r.stdout);
    expect(text).toContain(`#   moved: ${LIST_CHART_IMAGES[0]} <- containers[0].image`);
    expect(text).toContain(`#   moved: ${LIST_CHART_IMAGES[1]} <- containers[1].image`);
    expect(text).toContain('# Lists written whole (helm replaces a list, it does not merge it): containers');
    const file = join(tmp.path, 'webapp-airgap.yaml');
    await writeFile(file, text);
    const helm = await execa(requireTool('helm'), ['template', 'web', chart, '--kube-version', KUBE, '-f', file]);
    // the item's other fields survive (the port), only the images changed
    expect(helm.stdout).toContain('containerPort: 8080');
    const scan = await execa(process.execPath, [SEALIFT_BIN, 'images', 'scan', '-', '--json'], {
      input: helm.stdout,
      env: { CI: 'true' },
    });
    expect((JSON.parse(scan.stdout) as { images: { reference: string }[] }).images.map((i) => i.reference)).toEqual([
      `${REG}/acme/proxy:v3@${LIST_CHART_DIGEST}`,
      `${REG}/acme/webapp:2.1`,
    ]);
  }, 60_000);

  it('a stack release whose images are list items: images -e records the knobs and the list, generate writes the whole list moved, helm template pulls from the site', async () => {
    const stack = join(tmp.path, 'list-stack');
    await writeListChart(join(stack, 'vendor', 'webapp'), '0.4.0');
    await mkdir(join(stack, 'environments'), { recursive: true });
    await cp(join(PROJECT_ROOT, 'templates'), join(stack, 'templates'), { recursive: true });
    await writeFile(
      join(stack, 'environments', 'default.yaml'),
      'kubeVersion: v1.28.6\nsources:\n  vendor: { type: local, url: vendor }\nreleases:\n  webapp:\n    namespace: web\n    tier: apps\n    chart: { source: vendor, name: webapp, version: 0.4.0 }\n',
    );
    await writeFile(join(stack, 'environments', 'airgap.yaml'), `registry: { host: "${REG}", plainHttp: true }\n`);
    const images = await runSealift(['images', '-e', 'airgap', '--stack', stack, '--explain']);
    expect(images.exitCode, String(images.stderr)).toBe(0);
    expect(String(images.stdout)).toContain(`knob: ${LIST_CHART_IMAGES[0]} <- containers[0].image`);
    const lock = JSON.parse(await readFile(join(stack, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      knobs: Record<string, Record<string, string>>;
      knobValues: Record<string, Record<string, unknown>>;
    };
    expect(lock.knobs.webapp).toEqual({
      'containers[0].image': LIST_CHART_IMAGES[0],
      'containers[1].image': LIST_CHART_IMAGES[1],
    });
    expect(lock.knobValues.webapp!.containers).toHaveLength(2);
    const out = join(tmp.path, 'list-stack-generated');
    const gen = await runSealift(['generate', '-e', 'airgap', '--stack', stack, '-o', out]);
    expect(gen.exitCode, String(gen.stderr)).toBe(0);
    const helm = await execa(requireTool('helm'), [
      'template',
      'webapp',
      join(stack, 'vendor', 'webapp'),
      '--kube-version',
      KUBE,
      '-f',
      join(out, 'values', 'airgap', 'webapp.yaml'),
    ]);
    expect(helm.stdout).toContain('containerPort: 8080');
    expect(helm.stdout).toContain(`image: "${REG}/acme/webapp:2.1"`);
    expect(helm.stdout).toContain(`image: "${REG}/acme/proxy:v3@${LIST_CHART_DIGEST}"`);
    const verify = await runSealift(['verify', '-e', 'airgap', '--stack', stack]);
    expect(verify.exitCode, String(verify.stdout) + String(verify.stderr)).toBe(0);
  }, 120_000);

  it('refuses a bad registry and a scheme without --airgap-values before rendering (usage, exit 2)', async () => {
    const chart = join(FIXTURES, 'charts', 'istiod-1.23.2.tgz');
    const bad = await runSealift(['images', 'scan', chart, '--airgap-values', 'http://10.61.3.31:35000', '--json']);
    expect(bad.exitCode).toBe(2);
    expect(JSON.parse(String(bad.stdout)).error.message).toContain('HOST[:PORT]');
    const scheme = await runSealift(['images', 'scan', chart, '--scheme', 'scoped']);
    expect(scheme.exitCode).toBe(2);
  });
});
