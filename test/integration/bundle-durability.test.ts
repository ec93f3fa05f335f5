// Bug 7 (issue 8), durability: a blob a bundle run finds in its work dir is trusted only when it
// is known good. A power cut before this fix could leave a renamed blob whose bytes never reached
// the disk: the right size, zeroed (or cut and zero-filled). Such a blob must be fetched again,
// never packed into a tar that then fails verify at the site.
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSealift } from '../support/cli.ts';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';

/** Overwrites [from, size) of a file with zeros, keeping its size: what a lost write leaves. */
async function zeroFrom(path: string, from: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const { size } = await fh.stat();
    await fh.write(Buffer.alloc(size - from), 0, size - from, from);
  } finally {
    await fh.close();
  }
}

describe('bug 7 (issue 8): a zeroed or truncated-but-right-size blob in the work dir', () => {
  it('is fetched again, not packed', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const [img] = await seedImages(
      reg.host,
      [{ ref: 'docker.io/istio/pilot:1.23.2', layers: [300 << 10, 200 << 10] }],
      {
        workDir: tmp.path,
      },
    );
    const list = join(tmp.path, 'list.txt');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(list, `${img!.testRef}\n`);
    const out = join(tmp.path, 'out');
    const args = ['bundle', '--imagelist', list, '-o', out, '--plain-http', reg.host, '--no-site-tools', '--json'];

    // 1. a directory bundle: the work dir a killed run would leave
    const first = await runSealift([...args, '--no-pack']);
    expect(first.exitCode, first.stderr).toBe(0);
    const blobs = join(out, 'list.work', 'images', 'blobs', 'sha256');
    const layers = Object.entries(img!.blobs)
      .filter(([, size]) => size >= 200 << 10)
      .map(([digest]) => digest.slice('sha256:'.length));
    expect(layers).toHaveLength(2);
    expect((await readdir(blobs)).filter((n) => layers.includes(n))).toHaveLength(2);

    // 2. the state a power cut left under the old code: right size, bytes lost, no record of a check
    const [zeroed, cut] = layers as [string, string];
    await zeroFrom(join(blobs, zeroed), 0);
    await zeroFrom(join(blobs, cut), Math.floor((await stat(join(blobs, cut))).size / 2));
    for (const hex of layers) await rm(join(out, 'list.work', 'images', '.verified', hex), { force: true });

    // 3. the re-run fetches both again and packs a bundle that verifies
    const second = await runSealift(args);
    expect(second.exitCode, second.stderr).toBe(0);
    const fetched = second.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; digest?: string; skipped?: string })
      .filter((e) => e.type === 'blob:done' && !e.skipped)
      .map((e) => e.digest);
    expect(fetched).toEqual(expect.arrayContaining(layers.map((h) => `sha256:${h}`)));
    const verify = await runSealift(['bundle', 'verify', join(out, 'list.tar')]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  });
});
