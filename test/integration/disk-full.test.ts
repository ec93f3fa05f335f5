// Issue 15 class 7: a full disk under `bundle -o` (a small tmpfs, so the test needs root). ENOSPC
// while pulling or packing is DISK_FULL (exit 15) naming the directory, the free space and, for
// the tar and the site files whose sizes are known before a byte is written, how much they need; never a registry error
// ("Fix or exclude the reference") or INTERNAL. A packed bundle is laid out from the manifests
// before any blob is fetched, so one that cannot fit is refused before a blob is fetched or a byte
// of the tar written. Freeing space and running again finishes the bundle.
import { execa } from 'execa';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSealift } from '../support/cli.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { CLI_ENV, makeImages, writeBundle } from './load-fixtures.ts';

let registry: TestRegistry;
let work: Awaited<ReturnType<typeof tempDir>>;
let small: SeededImage[];
let big: SeededImage;

async function withTmpfs<T>(sizeMiB: number, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(work.path, `tmpfs-${Date.now()}`);
  await mkdir(dir);
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir]);
  try {
    return await body(dir);
  } finally {
    await execa('umount', [dir]);
  }
}

const remount = (dir: string, sizeMiB: number) => execa('mount', ['-o', `remount,size=${sizeMiB}m`, dir]);

async function list(name: string, refs: SeededImage[]): Promise<string> {
  const f = join(work.path, `${name}.txt`);
  await writeFile(f, `${refs.map((i) => i.testRef).join('\n')}\n`);
  return f;
}

const bundle = (listFile: string, out: string, extra: string[] = []) =>
  runSealift(
    ['bundle', '--imagelist', listFile, '-o', out, '--plain-http', registry.host, '--no-site-tools', ...extra],
    {
      cwd: work.path,
    },
  );

function expectDiskFull(r: { exitCode?: number; stderr: string }, where: string): void {
  expect(r.exitCode, r.stderr).toBe(15);
  expect(r.stderr).toContain(`error[DISK_FULL]: disk full: ${where}`);
  expect(r.stderr).toMatch(/\d+(\.\d)? (B|KiB|MiB) free/);
  expect(r.stderr).not.toContain('Fix or exclude');
  expect(r.stderr).not.toContain('INTERNAL');
  expect(r.stderr).not.toContain('    at ');
}

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  const seeded = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', layers: [4 << 20], uncompressed: true },
      { ref: 'docker.io/istio/proxyv2:1.23.2', layers: [4 << 20], uncompressed: true },
      { ref: 'docker.io/kserve/huggingfaceserver:v0.15.2', layers: [26 << 20], uncompressed: true },
    ],
    { workDir: work.path },
  );
  small = seeded.slice(0, 2);
  big = seeded[2]!;
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

describe('bundle on a full disk', () => {
  it('a layer larger than the disk: DISK_FULL before the first blob is fetched, then a re-run with room finishes', async () => {
    const l = await list('withbig', [small[0]!, big]);
    await withTmpfs(20, async (out) => {
      // the tar is laid out from the manifests' sizes before any blob is fetched: it cannot fit
      const full = await bundle(l, out, ['--json']);
      expect(full.exitCode, full.stderr).toBe(15);
      const err = (JSON.parse(full.stdout) as { error: { code: string; message: string; needed: number } }).error;
      expect(err.message).toMatch(/^disk full: packing withbig\.tar in .*: [\d.]+ MiB needed, [\d.]+ MiB free$/);
      expect(err.needed).toBeGreaterThan(26 << 20);
      expect(full.stderr).not.toContain('"blob:start"');
      expect((await readdir(out)).sort()).toEqual(['withbig.work']);
      await remount(out, 80);
      const again = await bundle(l, out);
      expect(again.exitCode, again.stderr).toBe(0);
      const v = await runSealift(['bundle', 'verify', join(out, 'withbig.tar')]);
      expect(v.exitCode, v.stderr).toBe(0);
    });
  }, 300_000);

  it('a tar that cannot fit is refused before a byte of it is written, saying needed and free', async () => {
    const l = await list('twosmall', small);
    await withTmpfs(6, async (out) => {
      const full = await bundle(l, out, ['--json']);
      expect(full.exitCode, full.stderr).toBe(15);
      const err = (
        JSON.parse(full.stdout) as { error: { code: string; message: string; needed: number; free: number } }
      ).error;
      expect(err.code).toBe('DISK_FULL');
      expect(err.message).toMatch(
        /^disk full: packing twosmall\.tar in .*: [\d.]+ (MiB|bytes) needed, [\d.]+ (KiB|MiB|bytes) free$/,
      );
      expect(err.needed).toBeGreaterThan(8 << 20);
      expect(err.needed).toBeGreaterThan(err.free);
      // no tar, no temp tar, nothing fetched in vain; the work dir (manifests) stays for the re-run
      expect(full.stderr).not.toContain('"blob:start"');
      expect((await readdir(out)).sort()).toEqual(['twosmall.work']);
      await remount(out, 40);
      const again = await bundle(l, out);
      expect(again.exitCode, again.stderr).toBe(0);
      const v = await runSealift(['bundle', 'verify', join(out, 'twosmall.tar')]);
      expect(v.exitCode, v.stderr).toBe(0);
    });
  }, 300_000);

  it('load --extract-to a disk without room for the site files: DISK_FULL before anything is pushed', async () => {
    const site = await startRegistry();
    const siteProxy = await startFaultProxy(site.host);
    try {
      const tar = await writeBundle(
        join(work.path, 'stage'),
        join(work.path, 'site.tar'),
        makeImages(['docker.io/istio/pilot:1.23.2']),
        {
          'helmfile.yaml': 'releases: []\n',
          'charts/big/values.yaml': `# ${'x'.repeat(3 << 20)}\n`,
        },
      );
      await withTmpfs(4, async (dir) => {
        await execa('dd', ['if=/dev/zero', `of=${join(dir, 'filler.bin')}`, 'bs=1M', 'count=2']);
        const r = await runSealift(['load', tar, '--registry', siteProxy.host, '--plain-http', '--extract-to', dir], {
          env: { SEALIFT_CACHE_DIR: CLI_ENV.SEALIFT_CACHE_DIR },
        });
        expectDiskFull(r, 'writing the site files (--extract-to)');
        expect(r.stderr).toMatch(/3\.0 MiB needed, [\d.]+ (KiB|MiB) free/);
        expect(siteProxy.requests).toEqual([]);
        expect(await readdir(dir)).toEqual(['filler.bin']);
      });
    } finally {
      await siteProxy.stop();
      await site.stop();
    }
  }, 300_000);

  it('a disk filled by something else: the first small write that fails is DISK_FULL too (directory bundle)', async () => {
    const l = await list('onesmall', [small[1]!]);
    await withTmpfs(12, async (out) => {
      const filler = join(out, 'filler.bin');
      // leave about 1 MiB: less than the 4 MiB layer, more than the manifests
      await execa('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=11']);
      // --no-pack writes blobs into the work layout as they come: a write fails mid-pull
      const full = await bundle(l, out, ['--no-pack']);
      expectDiskFull(full, 'pulling');
      await rm(filler);
      const again = await bundle(l, out);
      expect(again.exitCode, again.stderr).toBe(0);
    });
  }, 300_000);
});
