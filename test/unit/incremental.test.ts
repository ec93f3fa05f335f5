// Incremental bundles, the pure parts: the site receipt's schema (what it refuses, that it holds no
// credentials) and what `bundle --since` carries (per repository for manifests, registry-wide for
// blobs, an unchanged root meaning an unchanged graph).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseBundleIndex,
  parseReceipt,
  RECEIPT_FORMAT_VERSION,
  receiptUrl,
  serializeReceipt,
  type Receipt,
} from '../../src/bundle-format/index.ts';
import {
  checkSinceRegistry,
  planCarry,
  planSiteToolsSince,
  readSince,
  type PlannedImage,
  type SiteHoldings,
} from '../../src/bundle/since.ts';
import { SealiftError } from '../../src/errors.ts';
import { checkBaseTools } from '../../src/load/site-tools.ts';
import type { Descriptor, Digest } from '../../src/oci/types.ts';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const desc = (c: string, size: number, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'): Descriptor => ({
  digest: d(c),
  size,
  mediaType,
});
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const receipt: Receipt = {
  kind: 'sealift-receipt',
  version: 1,
  createdAt: '2026-12-01T00:00:00.000Z',
  tool: { name: 'sealift', version: '0.1.0' },
  registry: { host: '10.61.3.31:35000' },
  scheme: 'host-swap',
  bundle: {
    identity: d('0'),
    name: 'airgap.tar',
    createdAt: '2026-11-30T00:00:00.000Z',
    environment: 'airgap',
    base: null,
  },
  images: [{ source: 'docker.io/istio/pilot:1.23.2', target: '10.61.3.31:35000/istio/pilot:1.23.2', digest: d('1') }],
  repositories: { 'istio/pilot': { manifests: [d('1')], blobs: [d('a'), d('b')] } },
  siteTools: [{ path: 'bin/linux-amd64/helm', sha256: '5'.repeat(64) }],
  files: [{ path: 'values/istiod.yaml', sha256: '3'.repeat(64) }],
};

const refusal = (f: () => unknown): SealiftError => {
  try {
    f();
  } catch (e) {
    if (e instanceof SealiftError) return e;
    throw e;
  }
  throw new Error('not refused');
};

describe('the site receipt', () => {
  it('reads back what its writer wrote', () => {
    expect(parseReceipt(JSON.parse(serializeReceipt(receipt)), 'r.json')).toEqual(receipt);
  });

  it('refuses an unknown format version, naming the one found and the one read', () => {
    const e = refusal(() => parseReceipt({ ...receipt, version: 7 }, 'site/r.json'));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain('site/r.json');
    expect(e.message).toContain('format version 7');
    expect(e.message).toContain(`reads version ${RECEIPT_FORMAT_VERSION}`);
    expect(e.hint).toContain('newer sealift');
  });

  it('refuses a file that is no receipt, and a field that is wrong, naming its path', () => {
    expect(refusal(() => parseReceipt({ version: 1 }, 'x.json')).message).toContain('is not a sealift receipt');
    const bad = { ...receipt, repositories: { 'istio/pilot': { manifests: ['sha256:nope'], blobs: [] } } };
    expect(refusal(() => parseReceipt(bad, 'x.json')).message).toContain('repositories.istio/pilot.manifests.0');
  });

  it('holds no credentials: a registry with userinfo or a scheme is refused, URLs lose theirs', () => {
    for (const host of ['user:pass@10.61.3.31:35000', 'http://10.61.3.31:35000', '10.61.3.31:35000/path'])
      expect(() => serializeReceipt({ ...receipt, registry: { host } })).toThrow(/HOST\[:PORT\]/);
    expect(receiptUrl('https://builder:s3cr3t@github.com/knative/serving/serving-core.yaml?token=x')).toBe(
      'https://github.com/knative/serving/serving-core.yaml',
    );
    expect(serializeReceipt({ ...receipt, registry: { host: '[::1]:5000' } })).toContain('[::1]:5000');
  });
});

describe('what --since carries (planCarry)', () => {
  const held = (
    repos: Record<string, { manifests?: string[]; blobs?: string[] }>,
  ): Pick<SiteHoldings, 'repositories'> => ({
    repositories: new Map(
      Object.entries(repos).map(([name, r]) => [
        name,
        { manifests: new Set(r.manifests ?? []), blobs: new Set(r.blobs ?? []) },
      ]),
    ),
  });
  const image = (reference: string, repository: string, root: Descriptor, blobs: Descriptor[]): PlannedImage => ({
    reference,
    repository,
    root,
    manifests: [root],
    blobs,
  });

  it('an unchanged image is not carried; a changed one carries only its new blobs', () => {
    const site = held({ 'istio/pilot': { manifests: [d('1')], blobs: [d('a'), d('b')] } });
    const unchanged = image('docker.io/istio/pilot:1.23.2', 'istio/pilot', desc('1', 500, MANIFEST), [
      desc('a', 1000),
      desc('b', 2000),
    ]);
    expect(planCarry([unchanged], site)).toMatchObject({ carry: new Set(), absentBytes: 3500, carriedBytes: 0 });
    const changed = image('docker.io/istio/pilot:1.23.3', 'istio/pilot', desc('2', 600, MANIFEST), [
      desc('a', 1000),
      desc('c', 4000),
    ]);
    const plan = planCarry([changed], site);
    expect([...plan.carry].sort()).toEqual([d('2'), d('c')]);
    expect(plan.carriedBytes).toBe(4600);
    expect(plan.absent).toEqual([
      {
        digest: d('a'),
        size: 1000,
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        kind: 'blob',
        images: ['docker.io/istio/pilot:1.23.3'],
        from: ['istio/pilot'],
      },
    ]);
  });

  it('a manifest counts per repository, a blob anywhere in the registry (mounted from there)', () => {
    const site = held({ 'istio/pilot': { manifests: [d('1')], blobs: [d('a')] } });
    const copy = image('docker.io/istio/pilot-discovery:1.23.2', 'istio/pilot-discovery', desc('1', 500, MANIFEST), [
      desc('a', 1000),
    ]);
    const plan = planCarry([copy], site);
    expect([...plan.carry]).toEqual([d('1')]);
    expect(plan.absent.map((a) => [a.digest, a.kind, a.from])).toEqual([[d('a'), 'blob', ['istio/pilot']]]);
  });

  it('a root the repository holds means its whole graph is there (a bundle.json base lists no blobs)', () => {
    const site = held({ 'istio/pilot': { manifests: [d('1')] } });
    const plan = planCarry(
      [image('docker.io/istio/pilot:1.23.2', 'istio/pilot', desc('1', 500, MANIFEST), [desc('a', 1000)])],
      site,
    );
    expect(plan.carry.size).toBe(0);
    expect(plan.absent.map((a) => [a.digest, a.from])).toEqual([
      [d('1'), []],
      [d('a'), ['istio/pilot']],
    ]);
  });

  it('what one image carries is carried for all: no absent entry for it', () => {
    const site = held({ 'istio/pilot': { manifests: [d('1')], blobs: [d('a')] } });
    const plan = planCarry(
      [
        image('docker.io/istio/pilot:1.23.2', 'istio/pilot', desc('1', 500, MANIFEST), [desc('a', 1000)]),
        image('docker.io/istio/pilot-discovery:1.23.2', 'istio/pilot-discovery', desc('1', 500, MANIFEST), [
          desc('a', 1000),
        ]),
      ],
      site,
    );
    expect([...plan.carry]).toEqual([d('1')]);
    expect(plan.absent.map((a) => [a.digest, a.images])).toEqual([
      [d('a'), ['docker.io/istio/pilot:1.23.2', 'docker.io/istio/pilot-discovery:1.23.2']],
    ]);
  });

  it('an empty site carries everything', () => {
    const plan = planCarry(
      [image('docker.io/istio/pilot:1.23.2', 'istio/pilot', desc('1', 500, MANIFEST), [desc('a', 1000)])],
      held({}),
    );
    expect([...plan.carry].sort()).toEqual([d('1'), d('a')]);
    expect(plan.absent).toEqual([]);
  });
});

describe('--since input', () => {
  let dir: string | undefined;
  const tmp = async () => (dir ??= await mkdtemp(join(tmpdir(), 'sealift-since-')));
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a file of none of the accepted kinds is refused, naming it and what is accepted', async () => {
    for (const [name, text] of [
      ['notes.txt', 'not a bundle\n'],
      ['other.json', '{"name": "x"}'],
      ['broken.json', '{"kind": '],
    ] as const) {
      const f = join(await tmp(), name);
      await writeFile(f, text);
      const e = await readSince(f).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(SealiftError);
      expect((e as SealiftError).code).toBe('USAGE');
      expect((e as SealiftError).message).toContain(`--since ${f}`);
      expect((e as SealiftError).hint).toContain('site receipt');
    }
    await expect(readSince(join(await tmp(), 'absent.json'))).rejects.toThrow(/does not exist/);
  });

  it('a receipt of another registry than the bundle is for is refused, naming both', async () => {
    const f = join(await tmp(), 'receipt.json');
    await writeFile(f, serializeReceipt(receipt));
    const held = await readSince(f);
    expect(held.base).toMatchObject({ identity: d('0'), from: 'receipt', registry: '10.61.3.31:35000' });
    expect(() => checkSinceRegistry(held, f, '10.61.3.31:35000')).not.toThrow();
    // a receipt of an incremental bundle's load names that bundle's base as the parent
    await writeFile(f, serializeReceipt({ ...receipt, bundle: { ...receipt.bundle, base: d('9') } }));
    expect((await readSince(f)).base.parent).toBe(d('9'));
    const e = refusal(() => checkSinceRegistry(held, f, '10.61.3.32:5000'));
    expect(e.message).toContain('10.61.3.31:35000');
    expect(e.message).toContain('10.61.3.32:5000');
  });

  it('a bundle.json: its images are held by their roots in their repositories', async () => {
    const f = join(await tmp(), 'bundle.json');
    const index = {
      version: 1,
      tool: { name: 'sealift', version: '0.1.0' },
      createdAt: '2026-11-30T00:00:00.000Z',
      environment: null,
      registry: null,
      platforms: ['linux/amd64'],
      charts: [],
      files: [],
      siteTools: null,
      images: [
        {
          reference: 'docker.io/istio/pilot:1.23.2',
          releases: [],
          digest: d('1'),
          mediaType: MANIFEST,
          size: 500,
          sourceDigest: d('1'),
          selection: 'exact',
          platforms: [],
          blobs: 1,
          bytes: 1000,
        },
      ],
      totals: { images: 1, blobs: 1, blobBytes: 1000, imageBytes: 1000, savedBySharing: 0, charts: 0, files: 0 },
    };
    parseBundleIndex(JSON.stringify(index), f); // a valid one
    await writeFile(f, JSON.stringify(index));
    const held = await readSince(f);
    expect(held.base.from).toBe('bundle');
    expect([...held.repositories.get('istio/pilot')!.manifests]).toEqual([d('1')]);
  });
});

describe('site tools --since', () => {
  it("a platform's tools are left out when all match the base by sha256, carried as a set when one differs", async () => {
    const work = await mkdtemp(join(tmpdir(), 'sealift-since-tools-'));
    try {
      const files = [];
      for (const platform of ['linux/amd64', 'linux/arm64'])
        for (const tool of ['sealift', 'helm', 'helmfile', 'helm-diff'] as const) {
          const path = `bin/${platform.replace('/', '-')}/${tool}`;
          await mkdir(join(work, 'bin', platform.replace('/', '-')), { recursive: true });
          await writeFile(join(work, path), `${path}\n`);
          files.push({
            path,
            platform,
            tool,
            size: path.length + 1,
            sha256: `${platform === 'linux/arm64' && tool === 'sealift' ? 'f' : 'e'}`.repeat(64),
          });
        }
      // the base had every amd64 tool as now, and an older arm64 sealift
      const siteTools = new Map(files.map((f) => [f.path, 'e'.repeat(64)]));
      const r = await planSiteToolsSince(work, { platforms: ['linux/amd64', 'linux/arm64'], files }, { siteTools });
      expect(r.carried.platforms).toEqual(['linux/arm64']);
      expect(r.carried.files.map((f) => f.path)).toEqual(
        files.filter((f) => f.platform === 'linux/arm64').map((f) => f.path),
      );
      expect(r.unchanged.map((t) => t.path)).toEqual(
        files.filter((f) => f.platform === 'linux/amd64').map((f) => f.path),
      );
      await expect(stat(join(work, 'bin', 'linux-amd64'))).rejects.toThrow();
      expect((await stat(join(work, 'bin', 'linux-arm64', 'helm'))).isFile()).toBe(true);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('--since a directory', () => {
  it('a site dir is read by its receipt; a directory with neither is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sealift-since-dir-'));
    try {
      await expect(readSince(dir)).rejects.toThrow(/is no bundle directory/);
      await writeFile(join(dir, 'sealift-receipt.json'), serializeReceipt(receipt));
      expect((await readSince(dir)).base).toMatchObject({ from: 'receipt', identity: d('0') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the base site tools at load', () => {
  it("names the base's tools of the platform that the site dir holds with their sha256, and those it does not", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sealift-base-tools-'));
    try {
      await mkdir(join(dir, 'bin'), { recursive: true });
      await writeFile(join(dir, 'bin', 'helm'), 'helm\n');
      await writeFile(join(dir, 'bin', 'helmfile'), 'other bytes\n');
      const sha = (t: string) => createHash('sha256').update(t).digest('hex');
      const base = {
        siteTools: [
          { path: 'bin/linux-amd64/helm', sha256: sha('helm\n') },
          { path: 'bin/linux-amd64/helmfile', sha256: sha('helmfile\n') },
          { path: 'bin/linux-amd64/sealift', sha256: sha('sealift\n') },
          { path: 'bin/linux-arm64/helm', sha256: sha('arm helm\n') },
        ],
      };
      const r = await checkBaseTools(base, 'linux/amd64', dir);
      expect(r.installed).toEqual([join(dir, 'bin', 'helm')]);
      expect(r.missing.sort()).toEqual([join(dir, 'bin', 'helmfile'), join(dir, 'bin', 'sealift')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
