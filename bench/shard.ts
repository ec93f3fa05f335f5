// Benchmark: `sealift mirror --shard K/N` as N processes started at once (the pods of an Indexed
// Job) into one empty docker-registry on loopback, for N = 1, 2, 4 (or --shards). Prints wall
// time (start to the last shard's exit) and the bytes the registry received (a recording proxy
// in front of it), and how many blob uploads it committed.
//
//   node bench/shard.ts [--scale 1] [--shards 1,2,4] [--concurrency 4]
//
// The image set (scale 1): 24 images in 12 repositories, about 120 MB of unique blobs: three
// 8 MB bases shared across repositories, and a 4 MB layer of each image's own (gzip of random
// bytes: incompressible, as real layers mostly are). Made by test/support/images.ts, pushed by skopeo.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { blobUploads } from '../test/support/uploads.ts';
import { runSealift } from '../test/support/cli.ts';
import { startFaultProxy } from '../test/support/fault-proxy.ts';
import { seedImages, type ImageSpec } from '../test/support/images.ts';
import { tempDir } from '../test/support/process.ts';
import { startRegistry } from '../test/support/registry.ts';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    shards: { type: 'string', default: '1,2,4' },
    concurrency: { type: 'string', default: '4' },
  },
});
const S = Number(args.scale);
const MB = 1000 * 1000;
const BASES = ['distroless', 'python', 'debian'];
const specs: ImageSpec[] = Array.from({ length: 24 }, (_, i) => ({
  ref: `docker.io/team${i % 3}/app${i % 12}:v${Math.floor(i / 12)}`,
  base: BASES[i % 3] as string,
  baseLayers: [Math.round(8 * MB * S)],
  layers: [Math.round(4 * MB * S)],
}));

await using tmp = await tempDir('sealift-bench-shard-');
await using upstream = await startRegistry();
const seeded = await seedImages(upstream.host, specs, { workDir: tmp.path, concurrency: 2 });
const list = join(tmp.path, 'images.txt');
await writeFile(list, seeded.map((s) => s.testRef).join('\n') + '\n');
const unique = new Map(seeded.flatMap((s) => Object.entries(s.blobs)));
const uniqueBytes = [...unique.values()].reduce((a, b) => a + b, 0);
console.log(`${seeded.length} images, ${unique.size} unique blobs, ${(uniqueBytes / MB).toFixed(1)} MB`);
console.log('shards  wall s  MB uploaded  blob uploads  slowest shard s');
for (const n of args.shards.split(',').map(Number)) {
  await using site = await startRegistry();
  await using proxy = await startFaultProxy(site.host);
  const start = Date.now();
  const ends: number[] = [];
  const runs = await Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const r = await runSealift([
        'mirror',
        '--imagelist',
        list,
        '--to',
        proxy.host,
        '--plain-http',
        '--source-plain-http',
        upstream.host,
        '--shard',
        `${k}/${n}`,
        '--concurrency',
        args.concurrency,
        '--json',
      ]);
      ends.push(Date.now() - start);
      return r;
    }),
  );
  for (const r of runs) if (r.exitCode !== 0) throw new Error(`a shard failed: ${r.stderr}`);
  const wall = (Date.now() - start) / 1000;
  const uploads = [...blobUploads(proxy.requests).values()].reduce((a, b) => a + b, 0);
  console.log(
    `${String(n).padStart(6)}  ${wall.toFixed(1).padStart(6)}  ${(proxy.received() / MB).toFixed(1).padStart(11)}  ${String(uploads).padStart(12)}  ${(Math.max(...ends) / 1000).toFixed(1).padStart(15)}`,
  );
}
