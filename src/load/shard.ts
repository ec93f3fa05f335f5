// `mirror --shard K/N`: which images of a list one of N processes (an Indexed Job's pods) copies.
// The unit is the repository: the images of one repository stay in one shard, so the blobs they
// share are uploaded (or mounted) by one process only, and two shards never race on one manifest.
// Repositories are placed greedily, largest first, onto the lightest shard (ties: the lower
// index); a repository's weight is the sum of the sizes the lock knows, else its image count.
// Pure and deterministic: every pod computes the same partition from the same list.
import { SealiftError } from '../errors.ts';

export interface Shard {
  /** 0-based, as JOB_COMPLETION_INDEX counts */
  index: number;
  total: number;
}

export interface ShardItem {
  /** the repository key the partition keeps together (registry/repository) */
  repository: string;
  /** bytes, when the lock knows them */
  size?: number;
}

/** For every shard (0..total-1), the indices into `items` it copies, in list order. */
export function partitionByRepository(items: readonly ShardItem[], total: number): number[][] {
  const groups = new Map<string, { indices: number[]; bytes: number; sized: boolean }>();
  items.forEach((item, i) => {
    const g = groups.get(item.repository) ?? { indices: [], bytes: 0, sized: true };
    g.indices.push(i);
    if (item.size === undefined) g.sized = false;
    else g.bytes += item.size;
    groups.set(item.repository, g);
  });
  // sizes weigh only when every repository has them; a partly sized list is balanced by count
  const bySize = [...groups.values()].every((g) => g.sized);
  const ordered = [...groups.entries()]
    .map(([repository, g]) => ({ repository, indices: g.indices, weight: bySize ? g.bytes : g.indices.length }))
    .sort((a, b) => b.weight - a.weight || (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : 0));
  const load = Array.from({ length: total }, () => 0);
  const shards: number[][] = Array.from({ length: total }, () => []);
  for (const g of ordered) {
    let lightest = 0;
    for (let s = 1; s < total; s++) if ((load[s] as number) < (load[lightest] as number)) lightest = s;
    load[lightest] = (load[lightest] as number) + g.weight;
    (shards[lightest] as number[]).push(...g.indices);
  }
  return shards.map((s) => s.sort((a, b) => a - b));
}

const COUNT_RE = /^[1-9]\d*$/;
const INDEX_RE = /^(0|[1-9]\d*)$/;

/**
 * The shard from `--shard K/N`, `--shards N` and JOB_COMPLETION_INDEX (what an Indexed Job sets);
 * undefined when none is given. Anything inconsistent is a USAGE error naming the value.
 */
export function shardFrom(f: { shard?: string; shards?: string; completionIndex?: string }): Shard | undefined {
  const usage = (message: string) =>
    new SealiftError('USAGE', message, {
      hint: 'Give --shard K/N (K from 0 to N-1), or --shards N with the index in JOB_COMPLETION_INDEX (an Indexed Job sets it).',
    });
  let total: number | undefined;
  if (f.shards !== undefined) {
    if (!COUNT_RE.test(f.shards)) throw usage(`--shards takes a count of at least 1, not "${f.shards}"`);
    total = Number(f.shards);
  }
  if (f.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(f.shard);
    if (!m || !INDEX_RE.test(m[1] as string) || !COUNT_RE.test(m[2] as string))
      throw usage(`--shard takes K/N (e.g. 0/4), N at least 1, not "${f.shard}"`);
    const shard = { index: Number(m[1]), total: Number(m[2]) };
    if (shard.index >= shard.total)
      throw usage(`--shard ${f.shard}: the index counts from 0, so it must be below ${shard.total}`);
    if (total !== undefined && total !== shard.total)
      throw usage(`--shard ${f.shard} and --shards ${f.shards} disagree on the number of shards`);
    return shard;
  }
  if (total === undefined) {
    if (f.completionIndex !== undefined && f.completionIndex !== '')
      throw usage(`JOB_COMPLETION_INDEX is ${f.completionIndex} but no total is given`);
    return undefined;
  }
  if (f.completionIndex === undefined || f.completionIndex === '')
    throw usage(`--shards ${f.shards} needs the shard index: --shard K/${f.shards} or JOB_COMPLETION_INDEX`);
  if (!INDEX_RE.test(f.completionIndex))
    throw usage(`JOB_COMPLETION_INDEX "${f.completionIndex}" is not a shard index (0, 1, ...)`);
  const index = Number(f.completionIndex);
  if (index >= total)
    throw usage(`JOB_COMPLETION_INDEX ${index} is not below --shards ${total} (the index counts from 0)`);
  return { index, total };
}
