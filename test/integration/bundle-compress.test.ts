// `sealift bundle --compress zstd|gzip|none` (issue 10.3, the writer's side): a compressed
// bundle is the whole tar stream compressed (<name>.tar.zst / .tar.gz), split into parts after
// compression; what a user checks with the standard tools: sha256sum -c on the outer list, zstd
// -d / gunzip, tar -t in the format's order, and `bundle verify` on what comes out.
import { execa } from 'execa';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleTarOrder } from '../../src/bundle-format/index.ts';
import { runSealift } from '../support/cli.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

let registry: TestRegistry;
let work: Awaited<ReturnType<typeof tempDir>>;
let images: SeededImage[];
let listFile: string;

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  images = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', base: 'distroless', layers: [1 << 20] },
      // an uncompressed layer: what zstd has something to gain on
      { ref: 'docker.io/kserve/huggingfaceserver:v0.15.2', layers: [3 << 20], uncompressed: true },
    ],
    { workDir: work.path },
  );
  listFile = join(work.path, 'stack.txt');
  await writeFile(listFile, `${images.map((i) => i.testRef).join('\n')}\n`);
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

const bundle = (out: string, extra: string[]) =>
  runSealift(
    ['bundle', '--imagelist', listFile, '-o', out, '--plain-http', registry.host, '--no-site-tools', ...extra],
    { cwd: work.path },
  );

/** tar -t of a tar stream from a shell pipeline, e.g. `zstd -dc x.tar.zst`. */
async function listing(pipe: string): Promise<string[]> {
  return (await execa('sh', ['-c', `${pipe} | tar -tf -`])).stdout.split('\n');
}

describe('bundle --compress', () => {
  it('zstd: one .tar.zst (and its .sha256), which decompresses to a tar in the format order that verifies', async () => {
    const out = join(work.path, 'zstd');
    const r = await bundle(out, ['--compress', 'zstd', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['stack.tar.zst', 'stack.tar.zst.sha256']);
    const result = JSON.parse(r.stdout) as { pack: { compression: string; tarBytes: number; bytes: number } };
    expect(result.pack.compression).toBe('zstd');
    // zstd's magic number: readers detect the compression by it, not by the name
    const magic = (await readFile(join(out, 'stack.tar.zst'))).subarray(0, 4);
    expect(magic.toString('hex')).toBe('28b52ffd');
    await execa('sha256sum', ['-c', 'stack.tar.zst.sha256'], { cwd: out });
    expect(result.pack.bytes).toBe((await stat(join(out, 'stack.tar.zst'))).size);
    // the uncompressed 3 MiB layer is random bytes: no gain; the rest (headers, padding, JSON) shrinks
    expect(result.pack.bytes).toBeLessThan(result.pack.tarBytes);
    const names = await listing(`zstd -dc ${join(out, 'stack.tar.zst')}`);
    expect(names.slice(0, 2)).toEqual(['checksums.sha256', 'bundle.json']);
    expect(names).toEqual(bundleTarOrder(names));
    const x = join(work.path, 'zstd-x');
    await mkdir(x);
    await execa('sh', ['-c', `zstd -dc ${join(out, 'stack.tar.zst')} | tar -xf - -C ${x}`]);
    const v = await runSealift(['bundle', 'verify', x, '--json']);
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect((JSON.parse(v.stdout) as { images: number }).images).toBe(images.length);
  });

  it('gzip (and --gzip, its old name): a .tar.gz that bundle verify reads; none: the plain tar', async () => {
    const gz = join(work.path, 'gzip');
    const r = await bundle(gz, ['--gzip']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await readdir(gz)).sort()).toEqual(['stack.tar.gz', 'stack.tar.gz.sha256']);
    expect((await readFile(join(gz, 'stack.tar.gz'))).subarray(0, 2).toString('hex')).toBe('1f8b');
    const v = await runSealift(['bundle', 'verify', join(gz, 'stack.tar.gz')]);
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect((await listing(`gunzip -c ${join(gz, 'stack.tar.gz')}`)).slice(0, 2)).toEqual([
      'checksums.sha256',
      'bundle.json',
    ]);
    const none = join(work.path, 'none');
    const n = await bundle(none, ['--compress', 'none']);
    expect(n.exitCode, n.stderr).toBe(0);
    expect((await readdir(none)).sort()).toEqual(['stack.tar', 'stack.tar.sha256']);
  });

  it('split after compression: fixed-size parts of the .tar.zst whose concatenation decompresses', async () => {
    const out = join(work.path, 'split');
    const r = await bundle(out, ['--compress', 'zstd', '--split-size', '1M']);
    expect(r.exitCode, r.stderr).toBe(0);
    const parts = (await readdir(out)).filter((n) => n.startsWith('stack.tar.zst.part-')).sort();
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const p of parts.slice(0, -1)) expect((await stat(join(out, p))).size).toBe(1 << 20);
    await execa('sha256sum', ['-c', 'stack.tar.zst.sha256'], { cwd: out });
    const names = await listing(`cat ${parts.map((p) => join(out, p)).join(' ')} | zstd -dc`);
    expect(names.slice(0, 2)).toEqual(['checksums.sha256', 'bundle.json']);
    // no uncompressed temp tar or journal is left beside them
    expect((await readdir(out)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses an unknown compression and a compressed directory bundle, before any work', async () => {
    const out = join(work.path, 'bad');
    const r = await bundle(out, ['--compress', 'xz']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--compress xz: give none, gzip, zstd');
    const d = await bundle(out, ['--compress', 'zstd', '--no-pack']);
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toContain('--no-pack writes a directory: there is no tar to compress');
  });
});
