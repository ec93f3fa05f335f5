// Incremental bundles across the gap, against real docker-registry 2.8.2 and skopeo: a full bundle
// is loaded with --receipt; upstream one image changes, one is added and one is the same image
// under a second name; `bundle --since RECEIPT` carries only the new blobs (the tar is listed),
// within the size target; it refuses to load into an empty registry before any push, naming what
// is missing and the base; into the site it loads, and skopeo finds every image by digest.
import { execa } from 'execa';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseReceipt, type BundleIndex } from '../../src/bundle-format/index.ts';
import { requireTool } from '../../src/tools.ts';
import { craftBundle, editJson, resum } from '../support/bundles.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, storedRepositories } from '../support/registry.ts';
import { sealift, skopeoDigest } from './load-fixtures.ts';

const MiB = 1024 * 1024;

/** What a tag resolves to at the site after a linux/amd64 bundle: the amd64 manifest of an index. */
const siteDigest = (s: SeededImage) => s.platforms['linux/amd64'] ?? s.digest;

async function catalog(host: string): Promise<string[]> {
  const r = await fetch(`http://${host}/v2/_catalog`);
  return ((await r.json()) as { repositories: string[] }).repositories;
}

describe('bundle --since a site receipt', () => {
  it('carries only the new blobs, refuses an empty registry before any push, and loads into the site', async () => {
    await using tmp = await tempDir();
    const upstream = await startRegistry();
    await using site = await startRegistry();
    await using empty = await startRegistry();
    const first = await seedImages(
      upstream.host,
      [
        {
          ref: 'docker.io/istio/pilot:1.23.2',
          platforms: ['linux/amd64', 'linux/arm64'],
          base: 'distroless',
          layers: [600 << 10],
        },
        { ref: 'docker.io/istio/proxyv2:1.23.2', base: 'distroless', layers: [600 << 10] },
        { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1', format: 'docker', layers: [700 << 10] },
      ],
      { workDir: tmp.path },
    );
    const list = join(tmp.path, 'images.txt');
    await writeFile(list, `${first.map((s) => s.testRef).join('\n')}\n`);
    const full = await sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      join(tmp.path, 'full'),
      '--name',
      'stack',
      '--plain-http',
      upstream.host,
      '--no-site-tools',
      '--json',
    ]);
    expect(full.exitCode, full.stderr.slice(-3000)).toBe(0);
    const fullTar = join(tmp.path, 'full', 'stack.tar');
    const receiptFile = join(tmp.path, 'receipts', 'site.json');
    const loadedFull = await sealift([
      'load',
      fullTar,
      '--registry',
      site.host,
      '--plain-http',
      '--receipt',
      receiptFile,
      '--json',
    ]);
    expect(loadedFull.exitCode, loadedFull.stderr.slice(-3000)).toBe(0);
    const receipt = parseReceipt(JSON.parse(await readFile(receiptFile, 'utf8')), receiptFile);
    expect(receipt.registry.host).toBe(site.host);
    expect(Object.keys(receipt.repositories).sort()).toEqual([
      'istio/pilot',
      'istio/proxyv2',
      'jetstack/cert-manager-controller',
    ]);
    // every manifest and blob of every image, found at the site in its repository
    for (const s of first) {
      const got = receipt.repositories[s.repository]!;
      expect(got.manifests).toContain(siteDigest(s));
      // pilot's tag is an index: a linux/amd64 bundle carries the amd64 config and layers (3 of 6)
      if (s === first[0]) {
        expect(got.blobs).toHaveLength(3);
        for (const d of got.blobs) expect(Object.keys(s.blobs)).toContain(d);
      } else expect([...got.blobs].sort()).toEqual(Object.keys(s.blobs).sort());
    }

    // upstream: proxyv2 changes (same tag, new layers), cert-manager's webhook is added, and pilot
    // is copied under a second name (all its blobs are at the site already, in istio/pilot)
    const second = await seedImages(
      upstream.host,
      [
        { ref: 'docker.io/istio/proxyv2:1.23.2', layers: [3 * MiB] },
        { ref: 'quay.io/jetstack/cert-manager-webhook:v1.16.1', layers: [2 * MiB] },
      ],
      { workDir: tmp.path },
    );
    const skopeo = requireTool('skopeo');
    await execa(skopeo, [
      '--insecure-policy',
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${first[0]!.testRef}`,
      `docker://${upstream.host}/istio/pilot-discovery:1.23.2`,
    ]);
    const [proxyv2, webhook] = second as [SeededImage, SeededImage];
    const pilot = first[0]!;
    await writeFile(
      list,
      `${[pilot.testRef, proxyv2.testRef, first[2]!.testRef, webhook.testRef, `${upstream.host}/istio/pilot-discovery:1.23.2`].join('\n')}\n`,
    );
    const inc = await sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      join(tmp.path, 'inc'),
      '--name',
      'stack-update',
      '--since',
      receiptFile,
      '--plain-http',
      upstream.host,
      '--no-site-tools',
      '--json',
    ]);
    expect(inc.exitCode, inc.stderr.slice(-3000)).toBe(0);
    const incTar = join(tmp.path, 'inc', 'stack-update.tar');
    const blobsIn = async (tar: string) =>
      (await execa('tar', ['-tf', tar])).stdout
        .split('\n')
        .filter((e) => e.startsWith('images/blobs/sha256/'))
        .map((e) => `sha256:${e.slice(20)}`)
        .sort();

    // --since the previous bundle itself: the same carry (its graphs say what the site holds);
    // --since its bundle.json alone: only roots are known, so pilot-discovery's blobs travel again
    const sinceOther = async (since: string, name: string) => {
      const r = await sealift([
        'bundle',
        '--imagelist',
        list,
        '-o',
        join(tmp.path, 'inc'),
        '--name',
        name,
        '--since',
        since,
        '--plain-http',
        upstream.host,
        '--no-site-tools',
        '--json',
      ]);
      expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
      return blobsIn(join(tmp.path, 'inc', `${name}.tar`));
    };
    const bundleJson = join(tmp.path, 'bundle.json');
    await writeFile(bundleJson, (await execa('tar', ['-xOf', fullTar, 'bundle.json'])).stdout);
    const byTar = await sinceOther(fullTar, 'by-tar');
    const byIndex = await sinceOther(bundleJson, 'by-index');
    await upstream.stop(); // the air gap

    // the size target: at most 1.05x the new images' blob bytes + 2 MiB
    const newBytes = [proxyv2, webhook].reduce((n, s) => n + Object.values(s.blobs).reduce((a, b) => a + b, 0), 0);
    const incSize = (await stat(incTar)).size;
    expect(incSize).toBeLessThanOrEqual(1.05 * newBytes + 2 * MiB);
    expect(incSize).toBeGreaterThan(newBytes);

    // the tar holds exactly the new blobs and the manifests the site lacks in each repository
    const carried = await blobsIn(incTar);
    const expected = [
      ...Object.keys(proxyv2.blobs),
      ...Object.keys(webhook.blobs),
      proxyv2.digest,
      webhook.digest,
      siteDigest(pilot), // pilot-discovery's manifest: a new repository at the site (blobs are mounted)
    ];
    expect(carried).toEqual([...new Set(expected)].sort());
    expect(byTar).toEqual(carried);
    expect(byIndex).toEqual([...new Set([...expected, ...receipt.repositories['istio/pilot']!.blobs])].sort());

    const index = JSON.parse((await execa('tar', ['-xOf', incTar, 'bundle.json'])).stdout) as BundleIndex;
    expect(index.base).toMatchObject({
      identity: receipt.bundle.identity,
      from: 'receipt',
      registry: site.host,
      parent: null,
    });

    // verify accepts what is referenced but not carried, and says so
    const verified = await sealift(['bundle', 'verify', incTar]);
    expect(verified.exitCode, verified.stderr.slice(-2000)).toBe(0);
    expect(verified.stdout).toMatch(/referenced but not carried: they are the base's \(stack\.tar/);
    const inspected = JSON.parse((await sealift(['bundle', 'inspect', incTar, '--json'])).stdout);
    expect(inspected.base).toMatchObject({ identity: receipt.bundle.identity, name: 'stack.tar', from: 'receipt' });
    const diff = await sealift(['bundle', 'diff', fullTar, incTar]);
    expect(diff.stdout).toContain('base of A: full bundle');
    expect(diff.stdout).toContain('base of B: incremental on stack.tar');

    // an empty registry: refused before any push, naming the missing digests and the base
    const refused = await sealift(['load', incTar, '--registry', empty.host, '--plain-http', '--json']);
    expect(refused.exitCode, refused.stderr.slice(-2000)).toBe(8);
    const { error } = JSON.parse(refused.stdout) as {
      error: {
        code: string;
        message: string;
        base: { identity: string; name: string };
        missing: { repository: string; digest: string }[];
      };
    };
    expect(error.code).toBe('BASE_MISSING');
    expect(error.base).toMatchObject({ identity: receipt.bundle.identity, name: 'stack.tar' });
    expect(error.message).toContain(`${empty.host}/jetstack/cert-manager-controller@${first[2]!.digest}`);
    expect(error.missing.map((m) => m.digest)).toContain(Object.keys(first[2]!.blobs)[0]);
    expect(await catalog(empty.host)).toEqual([]);
    expect(await storedRepositories(empty.dataDir)).toEqual([]);

    // the site: loads, and every image is there by digest
    const siteDir = join(tmp.path, 'site');
    const loaded = await sealift([
      'load',
      incTar,
      '--registry',
      site.host,
      '--plain-http',
      '--extract-to',
      siteDir,
      '--json',
    ]);
    expect(loaded.exitCode, loaded.stderr.slice(-3000)).toBe(0);
    const result = JSON.parse(loaded.stdout);
    expect(result.base).toMatchObject({ identity: receipt.bundle.identity, mounted: expect.any(Number) });
    expect(result.base.mounted).toBeGreaterThan(0);
    for (const [repo, digest] of [
      ['istio/pilot', siteDigest(pilot)],
      ['istio/proxyv2', proxyv2.digest],
      ['jetstack/cert-manager-controller', first[2]!.digest],
      ['jetstack/cert-manager-webhook', webhook.digest],
      ['istio/pilot-discovery', siteDigest(pilot)],
    ] as const) {
      expect(await skopeoDigest(`${site.host}/${repo}@${digest}`)).toBe(digest);
      expect(await skopeoDigest(`${site.host}/${repo}:${repo.includes('cert-manager') ? 'v1.16.1' : '1.23.2'}`)).toBe(
        digest,
      );
    }
    // --extract-to always writes the receipt: now the whole site, the next --since's base
    const next = parseReceipt(JSON.parse(await readFile(join(siteDir, 'sealift-receipt.json'), 'utf8')), siteDir);
    expect(next.bundle.base).toBe(receipt.bundle.identity);
    expect(next.images).toHaveLength(5);
    expect(next.repositories['istio/pilot-discovery']!.blobs.sort()).toEqual(
      receipt.repositories['istio/pilot']!.blobs.sort(),
    );
  });

  it('a receipt never stores the credentials of a source URL', async () => {
    await using tmp = await tempDir();
    await using site = await startRegistry();
    const b = await craftBundle(join(tmp.path, 'b'));
    const file = 'releases/serving/serving-core.yaml';
    await mkdir(join(b.root, 'releases', 'serving'), { recursive: true });
    await writeFile(join(b.root, file), 'kind: ConfigMap\n');
    await resum(b.root);
    const sums = await readFile(join(b.root, 'checksums.sha256'), 'utf8');
    const sha256 = sums
      .split('\n')
      .find((l) => l.endsWith(file))!
      .slice(0, 64);
    await editJson(b.root, 'bundle.json', (v) => {
      v.files = [
        {
          release: 'serving',
          path: file,
          url: 'https://builder:s3cr3t-token@github.com/knative/serving/releases/download/knative-v1.15.2/serving-core.yaml?token=q1w2',
          sha256,
          size: 16,
        },
      ];
    });
    await resum(b.root);
    const receiptFile = join(tmp.path, 'receipt.json');
    const r = await sealift([
      'load',
      b.root,
      '--registry',
      site.host,
      '--plain-http',
      '--receipt',
      receiptFile,
      '--extract-to',
      join(tmp.path, 'site'),
      '--json',
    ]);
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    for (const f of [receiptFile, join(tmp.path, 'site', 'sealift-receipt.json')]) {
      const text = await readFile(f, 'utf8');
      expect(text).not.toContain('s3cr3t');
      expect(text).not.toContain('builder');
      expect(text).not.toContain('q1w2');
      const receipt = parseReceipt(JSON.parse(text), f);
      expect(receipt.files.find((x) => x.path === file)).toEqual({
        path: file,
        sha256,
        url: 'https://github.com/knative/serving/releases/download/knative-v1.15.2/serving-core.yaml',
      });
    }
  });
});
