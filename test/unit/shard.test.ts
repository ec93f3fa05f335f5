// mirror --shard: the partition every pod of an Indexed Job computes alike, and the flag checks.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SealiftError } from '../../src/errors.ts';
import { partitionByRepository, shardFrom } from '../../src/load/shard.ts';
import { readMirrorList } from '../../src/load/mirror.ts';
import { renderLock } from '../../src/images/lock.ts';
import { tempDir } from '../support/process.ts';

const repos = (names: string[]) => names.map((repository) => ({ repository }));

describe('partitionByRepository', () => {
  it('keeps the images of one repository in one shard and covers the list exactly once', () => {
    const items = repos(['a', 'b', 'a', 'c', 'd', 'b', 'e', 'a', 'f']);
    const shards = partitionByRepository(items, 3);
    expect(shards.flat().sort((x, y) => x - y)).toEqual(items.map((_, i) => i));
    for (const repo of ['a', 'b']) {
      const holders = shards.filter((s) => s.some((i) => items[i]?.repository === repo));
      expect(holders).toHaveLength(1);
    }
  });

  it('places largest first onto the lightest shard, ties by name then the lower index', () => {
    const items = repos(['a', 'a', 'a', 'b', 'b', 'c', 'd', 'e', 'f']);
    // a(3)->0; b(2)->1; c(1)->2; d(1)->2 (loads 3,2,1 -> 2); e(1)->1 (3,2,2 -> 1); f(1)->2 (3,3,2)
    expect(partitionByRepository(items, 3)).toEqual([
      [0, 1, 2],
      [3, 4, 7],
      [5, 6, 8],
    ]);
  });

  it('balances by the known sizes when every repository has one', () => {
    const items = [
      { repository: 'big', size: 900 },
      { repository: 'm1', size: 300 },
      { repository: 'm2', size: 300 },
      { repository: 'm3', size: 300 },
    ];
    // by count big would share a shard; by size it is alone against the three others
    expect(partitionByRepository(items, 2)).toEqual([[0], [1, 2, 3]]);
  });

  it('falls back to counts when some sizes are missing', () => {
    const items = [{ repository: 'big', size: 900 }, { repository: 'm1' }, { repository: 'm2', size: 1 }];
    expect(partitionByRepository(items, 2)).toEqual([[0, 2], [1]]);
  });

  it('balances by the sizes `sealift images` wrote into the lock, read back as mirror reads it', async () => {
    await using tmp = await tempDir();
    const entry = (reference: string, size: number) => ({ reference, releases: [], why: [], size });
    const file = join(tmp.path, 'e.lock.json');
    await writeFile(
      file,
      renderLock({
        version: 1,
        environment: 'e',
        images: [
          entry('docker.io/a/big:1', 9000),
          entry('docker.io/a/big:2', 9000),
          entry('docker.io/a/s1:1', 10),
          entry('docker.io/a/s2:1', 10),
          entry('docker.io/a/s3:1', 10),
        ],
      }),
    );
    const list = await readMirrorList(file);
    expect(list.map((e) => e.size)).toEqual([9000, 9000, 10, 10, 10]);
    const items = list.map((e) => ({
      repository: e.reference.replace(/:.*$/, ''),
      ...(e.size !== undefined ? { size: e.size } : {}),
    }));
    // by size the two big images (one repository) are one shard, the three small ones the other;
    // by count the three small repositories would outweigh it and one would join the big one
    expect(partitionByRepository(items, 2)).toEqual([
      [0, 1],
      [2, 3, 4],
    ]);
    expect(
      partitionByRepository(
        items.map(({ repository }) => ({ repository })),
        2,
      ),
    ).toEqual([
      [0, 1, 4],
      [2, 3],
    ]);
  });

  it('is the same for the same list, and more shards than repositories leaves some empty', () => {
    const items = repos(['x', 'y']);
    expect(partitionByRepository(items, 4)).toEqual(partitionByRepository(items, 4));
    expect(partitionByRepository(items, 4).filter((s) => s.length === 0)).toHaveLength(2);
  });
});

describe('shardFrom', () => {
  const usage = (f: Parameters<typeof shardFrom>[0], pattern: RegExp) => {
    try {
      shardFrom(f);
    } catch (e) {
      expect(e).toBeInstanceOf(SealiftError);
      expect((e as SealiftError).code).toBe('USAGE');
      expect((e as SealiftError).message).toMatch(pattern);
      return;
    }
    throw new Error(`no error for ${JSON.stringify(f)}`);
  };

  it.each([
    [{ shard: '0/4' }, { index: 0, total: 4 }],
    [
      { shard: '3/4', shards: '4' },
      { index: 3, total: 4 },
    ],
    [
      { shards: '4', completionIndex: '2' },
      { index: 2, total: 4 },
    ],
    [
      { shard: '1/2', completionIndex: '0' },
      { index: 1, total: 2 },
    ],
    [{}, undefined],
  ])('%j -> %j', (flags, shard) => {
    expect(shardFrom(flags)).toEqual(shard);
  });

  it.each([
    [{ shard: '4/4' }, /--shard 4\/4.*below 4/],
    [{ shard: '0/0' }, /"0\/0"/],
    [{ shard: '2' }, /"2"/],
    [{ shard: '-1/4' }, /"-1\/4"/],
    [{ shard: '1/4', shards: '3' }, /--shard 1\/4 and --shards 3 disagree/],
    [{ shards: '0' }, /--shards.*"0"/],
    [{ shards: '4' }, /--shards 4 needs the shard index/],
    [{ shards: '4', completionIndex: '4' }, /JOB_COMPLETION_INDEX 4 is not below --shards 4/],
    [{ shards: '4', completionIndex: 'x' }, /JOB_COMPLETION_INDEX "x"/],
    [{ completionIndex: '1' }, /JOB_COMPLETION_INDEX is 1 but no total/],
  ])('%j is a USAGE error naming the value', (flags, pattern) => usage(flags, pattern));
});
