// `sealift bundle -e airgap` on the real stack: the image lock written by `sealift images`, the
// charts and Knative release files served on loopback from ../shared/fixtures, every locked image
// seeded (small) into a registry that stands in for docker.io, gcr.io, quay.io ... by mirrors.
import { loadEnvironment } from '../../src/config/index.ts';
import { buildModelImage, findModelShell, MODEL_IMAGE_HOST, modelImageReference } from '../../src/models/index.ts';
import { OciLayout } from '../../src/oci/layout.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeImageReference } from '../../src/oci/reference.ts';
import { FIXTURES, startChartServers, type ChartServers } from '../support/chart-servers.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { runSealift } from '../support/cli.ts';

let servers: ChartServers;
let registry: TestRegistry;
let work: Awaited<ReturnType<typeof tempDir>>;
let overlay: string;
let lists: string;
let seeded: Map<string, SeededImage>;
let mirrorFlags: string[];

const sealift = (args: string[]) =>
  runSealift(args, { env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: join(work.path, 'cache') } });

interface Lock {
  version: 1;
  environment: string;
  images: { reference: string; releases: string[]; why: unknown[]; digest?: string; size?: number }[];
}

beforeAll(async () => {
  work = await tempDir();
  servers = await startChartServers();
  registry = await startRegistry();
  overlay = join(work.path, 'sources.yaml');
  await writeFile(overlay, await servers.sourcesOverlayYaml());
  lists = join(work.path, 'imagelists');
  const images = await sealift(['images', '-e', 'airgap', '--overlay', overlay, '--out', lists]);
  expect(images.exitCode, images.stderr).toBe(0);

  // every locked image, made small and pushed under its upstream repository path
  const lockFile = join(lists, 'airgap.lock.json');
  const lock = JSON.parse(await readFile(lockFile, 'utf8')) as Lock;
  const specs = lock.images.map((e, i) => {
    const ref = normalizeImageReference(e.reference);
    return {
      ref: `${ref.registry}/${ref.repository}:${ref.tag ?? `pinned-${i}`}`,
      platforms: i % 3 === 0 ? ['linux/amd64', 'linux/arm64'] : ['linux/amd64'],
      base: 'base',
      layers: [32 << 10],
    };
  });
  const pushed = await seedImages(registry.host, specs, { workDir: work.path });
  seeded = new Map();
  // upstream pins digests we cannot reproduce: the lock names the seeded ones instead
  lock.images = lock.images.map((e, i) => {
    const ref = normalizeImageReference(e.reference);
    const img = pushed[i]!;
    const reference = ref.digest
      ? `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}@${img.digest}`
      : e.reference;
    seeded.set(reference, img);
    return { ...e, reference };
  });
  await writeFile(lockFile, JSON.stringify(lock, null, 2));
  const hosts = [...new Set(lock.images.map((e) => normalizeImageReference(e.reference).registry))];
  mirrorFlags = ['--plain-http', registry.host, ...hosts.flatMap((h) => ['--mirror', `${h}=${registry.host}`])];
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await servers?.stop();
  await work?.[Symbol.asyncDispose]();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `sealift bundle -e airgap` from the loopback sources, its lock read from `imagelists`. */
const bundleAirgap = (imagelists: string, out: string, extra: string[] = []) =>
  sealift([
    'bundle',
    '-e',
    'airgap',
    '--overlay',
    overlay,
    '--imagelists',
    imagelists,
    '-o',
    out,
    ...extra,
    ...mirrorFlags,
    '--no-site-tools', // site-kit.test.ts covers the carried tools
  ]);

describe('sealift bundle -e airgap', () => {
  it('carries the generated helmfile, pinned charts, release files and every locked image', async () => {
    const out = join(work.path, 'bundles');
    const r = await bundleAirgap(lists, out, ['--json']);
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    const { index } = JSON.parse(r.stdout) as {
      index: {
        environment: string;
        registry: unknown;
        charts: { chart: string; version: string; path: string; sha256: string }[];
        files: { path: string; url?: string }[];
        images: { reference: string; digest: string; releases: string[] }[];
      };
    };
    expect(index.environment).toBe('airgap');
    // where the carried values point, and how they name images: load defaults --scheme from it
    expect(index.registry).toEqual({ host: '10.61.3.31:35000', plainHttp: true, scheme: 'host-swap' });
    // charts: the fixture bytes, at their pinned versions
    expect(index.charts.length).toBeGreaterThan(3);
    for (const c of index.charts) {
      const fixture = await readFile(join(FIXTURES, 'charts', `${c.chart}-${c.version}.tgz`));
      expect(c.sha256, c.path).toBe(sha(fixture));
    }
    expect(index.files.some((f) => f.url?.includes('/releases/download/') && f.path.startsWith('releases/'))).toBe(
      true,
    );
    // images: each reference at the digest the site resolves (the amd64 manifest for a multi-arch tag)
    expect(index.images).toHaveLength(seeded.size);
    for (const img of index.images) {
      if (img.reference.startsWith(`${MODEL_IMAGE_HOST}/`)) {
        // the smoke test's model is built by sealift, not pulled: the digest the same inputs give here
        const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
        const model = env.models.find((m) => modelImageReference(m) === img.reference)!;
        const layout = await OciLayout.open(join(work.path, 'model-layout'));
        const built = await buildModelImage(model, { layout, baseDir: PROJECT_ROOT, shell: findModelShell() });
        expect(img.digest, img.reference).toBe(built.root.digest);
        continue;
      }
      const s = seeded.get(img.reference)!;
      const pinned = img.reference.includes('@');
      expect(img.digest, img.reference).toBe(pinned ? s.digest : (s.platforms['linux/amd64'] ?? s.digest));
      expect(img.releases.length).toBeGreaterThan(0);
    }
    // the tar holds the site dir beside the images, and verifies
    const tar = join(out, 'airgap.tar');
    const names = (await execa('tar', ['-tf', tar])).stdout.split('\n');
    expect(names.slice(0, 2)).toEqual(['checksums.sha256', 'bundle.json']);
    expect(names).toContain('helmfile.yaml.gotmpl');
    expect(names.some((n) => n.startsWith('values/airgap/'))).toBe(true);
    expect(names).toContain('imagelists/airgap.lock.json');
    for (const c of index.charts) expect(names).toContain(c.path);
    expect((await sealift(['bundle', 'verify', tar])).exitCode).toBe(0);
  });

  it('records each image size: in the lock it carries, and `images --sizes-from` writes it into the lists', async () => {
    const out = join(work.path, 'sized');
    const r = await bundleAirgap(lists, out, ['--json']);
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    const { index } = JSON.parse(r.stdout) as { index: { images: { reference: string; bytes: number }[] } };
    const bytes = new Map(index.images.map((i) => [i.reference, i.bytes]));
    const carried = JSON.parse(
      (await execa('tar', ['-xOf', join(out, 'airgap.tar'), 'imagelists/airgap.lock.json'])).stdout,
    ) as Lock;
    for (const e of carried.images) expect(e.size, e.reference).toBe(bytes.get(e.reference));

    const fresh = join(work.path, 'sized-lists');
    const images = (extra: string[]) =>
      sealift(['images', '-e', 'airgap', '--overlay', overlay, '--out', fresh, ...extra]);
    const sized = await images(['--sizes-from', join(out, 'airgap.tar'), '--json']);
    expect(sized.exitCode, sized.stderr.slice(-3000)).toBe(0);
    const lockText = await readFile(join(fresh, 'airgap.lock.json'), 'utf8');
    const lock = JSON.parse(lockText) as Lock;
    // pinned references were re-pinned to the seeded digests above: the others match by name
    const named = lock.images.filter((e) => !e.reference.includes('@'));
    expect(named.length).toBeGreaterThan(10);
    for (const e of named) expect(e.size, e.reference).toBe(bytes.get(e.reference));
    expect(named.every((e) => (e.size ?? 0) > 32 << 10)).toBe(true);
    expect(JSON.parse(sized.stdout)).toMatchObject({ sized: lock.images.filter((e) => e.size !== undefined).length });
    // a later run without the bundle keeps them, and --check agrees with what is written
    expect((await images([])).exitCode).toBe(0);
    expect(await readFile(join(fresh, 'airgap.lock.json'), 'utf8')).toBe(lockText);
    expect((await images(['--check'])).exitCode).toBe(0);
    // something that is no bundle is refused by name, and nothing is written
    const refused = await images(['--sizes-from', join(work.path, 'sources.yaml')]);
    expect(refused.exitCode).toBe(10);
    expect(refused.stderr).toContain('sources.yaml');
    expect(await readFile(join(fresh, 'airgap.lock.json'), 'utf8')).toBe(lockText);
  });

  it('a locked image that does not exist: the error names it and its release, and no bundle is written', async () => {
    const bad = join(work.path, 'bad-lists');
    await mkdir(bad, { recursive: true });
    const lock = JSON.parse(await readFile(join(lists, 'airgap.lock.json'), 'utf8')) as Lock;
    lock.images.push({ reference: 'docker.io/istio/pilot-missing:1.23.2', releases: ['istiod'], why: [] });
    await writeFile(join(bad, 'airgap.lock.json'), JSON.stringify(lock));
    const out = join(work.path, 'bad-out');
    const r = await bundleAirgap(bad, out);
    expect(r.exitCode).toBe(9);
    expect(r.stderr).toContain('docker.io/istio/pilot-missing:1.23.2 (needed by release istiod)');
    expect(r.stderr).toContain('no bundle was written');
    await expect(readFile(join(out, 'airgap.tar'))).rejects.toThrow();
  });
});
