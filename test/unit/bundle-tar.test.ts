// The write-once tar's headers (src/bundle/tar.ts) are the bytes GNU tar writes for the same
// files in ustar format (mtime 0, uid/gid 0, no names), long paths go through the prefix field
// or a PAX header that GNU tar and the bundle reader both resolve, and a tar written at offsets
// (tar-file.ts) lists in GNU tar and reads back through the bundle reader.
import { execa } from 'execa';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Header } from 'tar';
import { layoutTar, tarHeader, TAR_BLOCK } from '../../src/bundle/tar.ts';
import { PlannedTar } from '../../src/bundle/tar-file.ts';
import { packOrder } from '../../src/bundle/pack.ts';
import { openBundleArchive } from '../../src/bundle-format/index.ts';
import { tempDir } from '../support/process.ts';
import { createHash } from 'node:crypto';

const gnuUstar = (dir: string, files: string[], out: string) =>
  execa('tar', [
    '--format=ustar',
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--mtime=@0',
    '-cf',
    out,
    '-C',
    dir,
    ...files,
  ]);

describe('tar headers', () => {
  it('are byte for byte what GNU tar --format=ustar writes, short and prefix-split paths, 0644 and 0755', async () => {
    await using tmp = await tempDir();
    const d = join(tmp.path, 'd');
    const long = `charts/${'a'.repeat(60)}/templates/${'b'.repeat(70)}.yaml`; // > 100 bytes: prefix + name
    expect(long.length).toBeGreaterThan(100);
    const files = [
      { path: 'checksums.sha256', data: 'x\n', mode: 0o644 },
      { path: 'bin/linux-amd64/helm', data: Buffer.alloc(1500, 1), mode: 0o755 },
      { path: `images/blobs/sha256/${'c'.repeat(64)}`, data: '', mode: 0o644 },
      { path: long, data: 'kind: x\n', mode: 0o644 },
    ];
    for (const f of files) {
      await mkdir(join(d, f.path, '..'), { recursive: true });
      await writeFile(join(d, f.path), f.data);
      await chmod(join(d, f.path), f.mode);
    }
    for (const f of files) {
      const out = join(tmp.path, 'one.tar');
      await gnuUstar(d, [f.path], out);
      const gnu = (await readFile(out)).subarray(0, TAR_BLOCK);
      const ours = tarHeader({ path: f.path, size: Buffer.byteLength(f.data), mode: f.mode });
      expect(ours.length).toBe(TAR_BLOCK);
      expect(ours.toString('hex'), f.path).toBe(gnu.toString('hex'));
    }
  });

  it('a path too long for ustar gets a PAX header: GNU tar and node-tar read the full path', async () => {
    const path = `charts/${'x'.repeat(180)}.yaml`; // no "/" split fits
    const h = tarHeader({ path, size: 5, mode: 0o644 });
    expect(h.length).toBe(3 * TAR_BLOCK);
    const pax = new Header(h.subarray(0, TAR_BLOCK));
    expect(pax.type).toBe('ExtendedHeader');
    expect(pax.cksumValid).toBe(true);
    expect(h.subarray(TAR_BLOCK, 2 * TAR_BLOCK).toString('utf8')).toContain(` path=${path}\n`);
    await using tmp = await tempDir();
    const tar = join(tmp.path, 'pax.tar');
    await writeFile(tar, Buffer.concat([h, Buffer.from('hello'), Buffer.alloc(TAR_BLOCK - 5), Buffer.alloc(1024)]));
    expect((await execa('tar', ['-tf', tar])).stdout).toBe(path);
  });

  it('a tar written at offsets, out of order, lists in GNU tar and reads back through the bundle reader', async () => {
    await using tmp = await tempDir();
    const files = [
      { path: 'checksums.sha256', data: Buffer.from('a  b\n') },
      { path: 'bundle.json', data: Buffer.from('{}\n') },
      { path: 'images/blobs/sha256/big', data: Buffer.alloc(3 * 1024 * 1024 + 7, 9) },
      { path: 'values/x.yaml', data: Buffer.from('a: 1\n') },
    ];
    const layout = layoutTar(files.map((f) => ({ path: f.path, size: f.data.length, mode: 0o644 })));
    const sha = new Map(files.map((f) => [f.path, createHash('sha256').update(f.data).digest('hex')]));
    const out = join(tmp.path, 'b.tar');
    // split into 1 MiB parts: writes cross part boundaries
    const tar = await PlannedTar.prepare(out, layout, sha, 1024 * 1024);
    await tar.open();
    for (const f of [...files].reverse()) {
      const w = tar.writer(f.path);
      await new Promise<void>((resolve, reject) => w.end(f.data, (e?: Error | null) => (e ? reject(e) : resolve())));
      await tar.markDone(f.path);
    }
    const parts = await tar.complete();
    await tar.commit(parts);
    expect(parts.map((p) => p.path.split('/').pop())).toEqual([
      'b.tar.part-000',
      'b.tar.part-001',
      'b.tar.part-002',
      'b.tar.part-003',
    ]);
    // each part's sha256 (hashed in order while the files were written, last file first) is sha256sum's
    for (const p of parts) expect(p.sha256, p.path).toBe((await execa('sha256sum', [p.path])).stdout.split(' ')[0]);
    const whole = join(tmp.path, 'whole.tar');
    await execa('sh', ['-c', `cat ${parts.map((p) => p.path).join(' ')} > ${whole}`]);
    expect((await execa('tar', ['-tf', whole])).stdout.split('\n')).toEqual(files.map((f) => f.path));
    const archive = await openBundleArchive(parts[0]!.path);
    try {
      for (const f of files) expect((await archive.readSmall(f.path)).equals(f.data), f.path).toBe(true);
    } finally {
      await archive.close();
    }
  });

  it("a re-run over a killed run of another layout keeps no stale byte: padding is zero, the sha256 is the file's", async () => {
    await using tmp = await tempDir();
    const out = join(tmp.path, 'c.tar');
    const one = { path: 'images/blobs/sha256/one', data: Buffer.alloc(700, 1) };
    const two = { path: 'images/blobs/sha256/two', data: Buffer.alloc(1300, 2) };
    const plan = (files: { path: string; data: Buffer }[]) => ({
      layout: layoutTar(files.map((f) => ({ path: f.path, size: f.data.length, mode: 0o644 }))),
      sha: new Map(files.map((f) => [f.path, createHash('sha256').update(f.data).digest('hex')])),
    });
    const write = async (tar: PlannedTar, f: { path: string; data: Buffer }) => {
      const w = tar.writer(f.path);
      await new Promise<void>((resolve, reject) => w.end(f.data, (e?: Error | null) => (e ? reject(e) : resolve())));
      await tar.markDone(f.path);
    };
    // the killed run: a bigger first file, and bytes everywhere the next layout has padding
    const killed = plan([{ path: one.path, data: Buffer.alloc(1100, 0xff) }, two]);
    const first = await PlannedTar.prepare(out, killed.layout, killed.sha);
    await first.open();
    await write(first, { path: one.path, data: Buffer.alloc(1100, 0xff) });
    await first.close();
    const next = plan([one, two]);
    const tar = await PlannedTar.prepare(out, next.layout, next.sha);
    await tar.open();
    await write(tar, two);
    await write(tar, one);
    const [part] = await tar.complete();
    await tar.commit([part!]);
    const bytes = await readFile(out);
    const f1 = next.layout.files[0]!;
    expect(bytes.subarray(f1.dataOffset + 700, f1.dataOffset + 1024).every((b) => b === 0)).toBe(true);
    expect(part!.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect((await execa('tar', ['-tf', out])).stdout.split('\n')).toEqual([one.path, two.path]);
  });
});

describe('packOrder', () => {
  const blob = (c: string) => `images/blobs/sha256/${c.repeat(64)}`;
  const paths = [
    'images/index.json',
    blob('a'),
    'bundle.json',
    blob('c'),
    'checksums.sha256',
    'imagelists/images.txt',
    blob('b'),
    'images/oci-layout',
  ];
  it('puts the head files first, then the blobs in fetch order, the unranked ones by path after them', () => {
    expect(packOrder(paths, ['sha256:' + 'c'.repeat(64), 'sha256:' + 'a'.repeat(64)])).toEqual([
      'checksums.sha256',
      'bundle.json',
      'imagelists/images.txt',
      blob('c'),
      blob('a'),
      blob('b'),
      'images/index.json',
      'images/oci-layout',
    ]);
  });
  it('is a function of the contents: the same files in any order give the same layout', () => {
    const order = ['sha256:' + 'b'.repeat(64)];
    expect(packOrder([...paths].reverse(), order)).toEqual(packOrder(paths, order));
    expect(packOrder(paths)).toEqual([
      'checksums.sha256',
      'bundle.json',
      ...paths.filter((p) => !/^(checksums|bundle)/.test(p)).sort(),
    ]);
  });
});
