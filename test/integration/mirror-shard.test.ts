// `sealift mirror --shard K/N`: 4 shard processes started at once copy one list with shared bases
// into one empty registry, as the pods of an Indexed Job do. The registry's side (a recording
// proxy in front of it) counts how often each blob was uploaded; skopeo checks every image.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { blobUploads } from '../support/uploads.ts';
import { seedImages, type ImageSpec } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { sealift, skopeoDigest } from './load-fixtures.ts';

// 12 repositories, 30 tags; three bases shared across repositories (and so across shards)
const BASES = ['distroless', 'alpine', 'debian'];
const SPECS: ImageSpec[] = Array.from({ length: 30 }, (_, i) => ({
  ref: `docker.io/team${i % 3}/app${i % 12}:v${Math.floor(i / 12)}.${i}`,
  base: BASES[i % 3] as string,
  baseLayers: [48 << 10],
  layers: [8 << 10],
}));

describe('sealift mirror --shard', () => {
  it('4 shards at once fill one registry: every image by digest, shared blobs uploaded at most twice, a re-run uploads nothing', async () => {
    await using tmp = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    await using proxy = await startFaultProxy(site.host);
    const seeded = await seedImages(upstream.host, SPECS, { workDir: tmp.path, concurrency: 2 });
    const list = join(tmp.path, 'images.txt');
    await writeFile(list, seeded.map((s) => s.testRef).join('\n') + '\n');
    const args = (shard: string[]) => [
      'mirror',
      '--imagelist',
      list,
      '--to',
      proxy.host,
      '--plain-http',
      '--source-plain-http',
      upstream.host,
      ...shard,
      '--json',
    ];
    // shard 3 as an Indexed Job's pod gets it: --shards and JOB_COMPLETION_INDEX
    const shardArgs = [
      ['--shard', '0/4'],
      ['--shard', '1/4'],
      ['--shard', '2/4'],
      ['--shards', '4'],
    ];
    const runs = await Promise.all(
      shardArgs.map((s, i) => sealift(args(s), i === 3 ? { JOB_COMPLETION_INDEX: '3' } : {})),
    );
    const results = runs.map((r) => {
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      return JSON.parse(r.stdout) as {
        shard: { index: number; images: number; of: number };
        checks: { source: string; status: string }[];
      };
    });
    expect(results.map((r) => r.shard.index)).toEqual([0, 1, 2, 3]);
    // the union of the shards is the list, each image in exactly one shard
    const copied = results.flatMap((r) => r.checks.map((c) => c.source)).sort();
    expect(copied).toEqual(seeded.map((s) => s.testRef).sort());
    expect(results.flatMap((r) => r.checks.map((c) => c.status)).every((s) => s === 'ok')).toBe(true);
    // images of one repository never split
    for (const r of results)
      for (const o of results.filter((x) => x !== r)) {
        const repos = new Set(r.checks.map((c) => c.source.replace(/:[^:/]+$/, '')));
        expect(o.checks.some((c) => repos.has(c.source.replace(/:[^:/]+$/, '')))).toBe(false);
      }
    for (const s of seeded) expect(await skopeoDigest(`${site.host}/${s.repository}:${s.tag}`)).toBe(s.digest);

    const uploads = blobUploads(proxy.requests);
    const worst = Math.max(...uploads.values());
    const total = [...uploads.values()].reduce((a, b) => a + b, 0);
    const distinct = new Set(seeded.flatMap((s) => Object.keys(s.blobs))).size;
    console.log(`mirror --shard: ${distinct} distinct blobs, ${total} uploads, at most ${worst} of one blob`);
    expect(uploads.size).toBe(distinct);
    expect(worst).toBeLessThanOrEqual(2);

    // a re-run of any shard is a no-op: no upload starts
    const before = proxy.requests.length;
    const again = await sealift(args(['--shard', '2/4']));
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    const after = proxy.requests.slice(before);
    expect(after.filter((r) => r.path.includes('/blobs/uploads/'))).toEqual([]);
  }, 120_000);
});

describe('sealift mirror --shard: bad input', () => {
  it.each([
    [['--shard', '4/4'], /--shard 4\/4/],
    [['--shard', '0/0'], /takes K\/N.*0\/0/],
    [['--shard', '2'], /takes K\/N.*not \\"2\\"/],
    [['--shard', '1/4', '--shards', '3'], /disagree/],
    [['--shards', '4'], /needs the shard index/],
  ])('%j is a usage error (exit 2) naming the value, before anything is read', async (flags, message) => {
    const r = await sealift([
      'mirror',
      '--imagelist',
      '/nonexistent/list.txt',
      '--to',
      '127.0.0.1:1',
      ...flags,
      '--json',
    ]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(2);
    expect(r.stdout + r.stderr).toMatch(message);
  });
});
