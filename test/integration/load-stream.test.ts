// `sealift load` in one sequential read (issue 10.2, 10.3): from a pipe (`load -`), from zstd and
// gzip compressed bundles (whole and split with `split -b`), a corrupted blob never committed and
// its image never tagged, a cut pipe refused with a re-run that completes. Against the real
// docker-registry; skopeo (an independent client) checks every image by digest at the target.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startRegistry, storedRepositories } from '../support/registry.ts';
import { tempDir } from '../support/process.ts';
import { CLI, CLI_ENV, makeImages, sealift, skopeoDigest, writeBundle, type FixtureImage } from './load-fixtures.ts';

const NAMES = [
  'docker.io/istio/pilot:1.23.2',
  'quay.io/jetstack/cert-manager-controller:v1.16.1',
  'ghcr.io/kserve/kserve-controller:v0.15.2',
];
/** above the 4 MiB a load holds in memory: these layers are pushed while they stream by */
const BIG = 5 * 1024 * 1024;
const repoOf = (source: string) => source.slice(source.indexOf('/') + 1, source.lastIndexOf(':'));
const tagOf = (source: string) => source.slice(source.lastIndexOf(':') + 1);

/** `sealift load -` with `input` on stdin, as `cat b.tar | sealift load - ...` runs it. */
function loadFromPipe(input: Buffer, host: string, extra: string[] = [], env: Record<string, string> = {}) {
  return execa(process.execPath, [CLI, 'load', '-', '--registry', host, '--plain-http', ...extra], {
    input,
    reject: false,
    env: { ...CLI_ENV, CI: 'true', ...env },
    timeout: 240_000,
  });
}

async function expectEveryImageByDigest(host: string, images: FixtureImage[]): Promise<void> {
  for (const img of images) {
    expect(await skopeoDigest(`${host}/${repoOf(img.source)}@${img.root.digest}`)).toBe(img.root.digest);
    expect(await skopeoDigest(`${host}/${repoOf(img.source)}:${tagOf(img.source)}`)).toBe(img.root.digest);
  }
}

async function status(url: string, method = 'GET'): Promise<number> {
  const res = await fetch(url, { method });
  await res.arrayBuffer();
  return res.status;
}

describe('load in one sequential read', () => {
  it('loads from a pipe (`load -`), site files included, and a re-run from the pipe pushes nothing', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES, { layerBytes: BIG });
    const tar = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images, {
      'helmfile.yaml': 'releases: []\n',
      'values/airgap/istiod.yaml': 'global:\n  hub: 10.61.3.31:35000/istio\n',
    });
    const site = join(tmp.path, 'site');
    // the layers wait for their pushes in a spool under the temp directory
    const temp = join(tmp.path, 'temp');
    await mkdir(temp);
    const r = await loadFromPipe(await readFile(tar), reg.host, ['--extract-to', site, '--json'], { TMPDIR: temp });
    expect(r.exitCode, r.stdout + r.stderr.slice(-3000)).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.bundle).toBe('-');
    expect(result.ok).toBe(true);
    expect(result.images.map((i: { status: string }) => i.status)).toEqual(['pushed', 'pushed', 'pushed']);
    await expectEveryImageByDigest(reg.host, images);
    expect(await readFile(join(site, 'values/airgap/istiod.yaml'), 'utf8')).toContain('hub: 10.61.3.31:35000/istio');
    expect(await readFile(join(site, 'helmfile.yaml'), 'utf8')).toBe('releases: []\n');
    // the spools the stream wrote into are gone
    expect((await readdir(site)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await readdir(temp)).toEqual([]);

    const again = await loadFromPipe(await readFile(tar), reg.host, ['--json']);
    expect(again.exitCode, again.stderr.slice(-3000)).toBe(0);
    const second = JSON.parse(again.stdout);
    expect(second.stats.bytesPushed).toBe(0);
    expect(second.images.map((i: { status: string }) => i.status)).toEqual(['present', 'present', 'present']);
  });

  it.each(['file', 'pipe'] as const)(
    'refuses a bundle with one corrupted blob byte (GNU tar, %s): the blob is never in the registry, its image never tagged',
    async (how) => {
      await using tmp = await tempDir();
      await using reg = await startRegistry();
      const images = makeImages(NAMES, { layerBytes: BIG });
      const stage = join(tmp.path, 'stage');
      await writeBundle(stage, join(tmp.path, 'node-tar.tar'), images);
      // one byte of one big layer flipped after checksums.sha256 was written, then tarred by GNU tar
      // in the bundle's order (checksums first, bundle.json next)
      const victim = images[1]!;
      const layer = victim.blobs.find((b) => b.size > 4 * 1024 * 1024)!;
      const path = join(stage, 'images/blobs/sha256', layer.digest.slice(7));
      const bytes = await readFile(path);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x01;
      await writeFile(path, bytes);
      const blobs = (await readdir(join(stage, 'images/blobs/sha256'))).sort().map((f) => `images/blobs/sha256/${f}`);
      const tar = join(tmp.path, 'b.tar');
      await execa('tar', [
        '--format=gnu',
        '-cf',
        tar,
        '-C',
        stage,
        'checksums.sha256',
        'bundle.json',
        ...blobs,
        'images/index.json',
        'images/oci-layout',
      ]);
      const r =
        how === 'pipe'
          ? await loadFromPipe(await readFile(tar), reg.host)
          : await sealift(['load', tar, '--registry', reg.host, '--plain-http']);
      expect(r.exitCode, r.stdout + r.stderr.slice(-3000)).toBe(10);
      expect(r.stderr).toContain(`images/blobs/sha256/${layer.digest.slice(7)}: sha256 is`);
      expect(r.stderr).toContain('nothing is loaded from such a bundle');
      for (const repo of [repoOf(victim.source), 'sealift/incoming'])
        expect(await status(`${reg.url}/v2/${repo}/blobs/${layer.digest}`)).toBe(404);
      expect(await status(`${reg.url}/v2/${repoOf(victim.source)}/manifests/${tagOf(victim.source)}`)).toBe(404);
      // no image of a refused bundle is tagged: no repository holds a manifest
      expect(await storedRepositories(reg.dataDir)).toEqual([]);
    },
  );

  it('loads zstd, gzip and split zstd bundles (load and load -), and bundle verify reads them', async () => {
    await using tmp = await tempDir();
    const images = makeImages(NAMES, { layerBytes: BIG });
    const tar = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const raw = await readFile(tar);
    const zst = join(tmp.path, 'b.tar.zst');
    const gz = join(tmp.path, 'b.tar.gz');
    await writeFile(zst, zstdCompressSync(raw));
    await writeFile(gz, gzipSync(raw, { level: 1 }));
    // split after compression, as `bundle --split-size` does; the magic is only in the first part
    const splitDir = join(tmp.path, 'split');
    await execa('mkdir', ['-p', splitDir]);
    await execa('split', ['-b', '2M', '-d', '-a', '3', zst, join(splitDir, 'b.tar.zst.part-')]);
    const parts = (await readdir(splitDir)).sort();
    expect(parts.length).toBeGreaterThan(2);
    const sha = async (f: string) =>
      createHash('sha256')
        .update(await readFile(f))
        .digest('hex');
    await writeFile(`${zst}.sha256`, `${await sha(zst)}  ${basename(zst)}\n`);
    await writeFile(`${gz}.sha256`, `${await sha(gz)}  ${basename(gz)}\n`);
    const lines = await Promise.all(parts.map(async (p) => `${await sha(join(splitDir, p))}  ${p}\n`));
    await writeFile(join(splitDir, 'b.tar.zst.sha256'), lines.join(''));
    const first = join(splitDir, parts[0]!);

    for (const input of [zst, gz, first]) {
      const v = await sealift(['bundle', 'verify', input, '--json']);
      expect(v.exitCode, `${input}\n${v.stdout}${v.stderr.slice(-2000)}`).toBe(0);
      expect(JSON.parse(v.stdout).images).toBe(images.length);
      await using reg = await startRegistry();
      const r = await sealift(['load', input, '--registry', reg.host, '--plain-http', '--json']);
      expect(r.exitCode, `${input}\n${r.stdout}${r.stderr.slice(-3000)}`).toBe(0);
      await expectEveryImageByDigest(reg.host, images);
    }
    await using reg = await startRegistry();
    const piped = await loadFromPipe(await readFile(zst), reg.host);
    expect(piped.exitCode, piped.stdout + piped.stderr.slice(-3000)).toBe(0);
    await expectEveryImageByDigest(reg.host, images);

    // a damaged compressed bundle does not verify
    const damaged = Buffer.from(await readFile(zst));
    damaged[damaged.length >> 1] = (damaged[damaged.length >> 1] ?? 0) ^ 0xff;
    await writeFile(zst, damaged);
    const bad = await sealift(['bundle', 'verify', zst]);
    expect(bad.exitCode).toBe(10);
  });

  it.each(['tar', 'zstd'] as const)(
    'a cut pipe (%s) fails with a clear error and exit code, tags nothing, and a re-run completes',
    async (kind) => {
      await using tmp = await tempDir();
      await using reg = await startRegistry();
      const images = makeImages(NAMES, { layerBytes: BIG });
      const tar = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
      const whole = kind === 'tar' ? await readFile(tar) : zstdCompressSync(await readFile(tar));
      const cut = await loadFromPipe(whole.subarray(0, Math.floor(whole.length * 0.6)), reg.host);
      expect(cut.exitCode, cut.stdout + cut.stderr.slice(-3000)).toBe(10);
      expect(cut.stderr).toMatch(
        kind === 'tar' ? /stdin: the archive is truncated/ : /stdin: the zstd stream is damaged or cut short/,
      );
      expect(await storedRepositories(reg.dataDir)).toEqual([]);
      const rerun = await loadFromPipe(whole, reg.host, ['--json']);
      expect(rerun.exitCode, rerun.stdout + rerun.stderr.slice(-3000)).toBe(0);
      await expectEveryImageByDigest(reg.host, images);
    },
  );
});
