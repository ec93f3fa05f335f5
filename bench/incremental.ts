// Benchmark: the size of an incremental bundle (`bundle --since RECEIPT`) when one image of the
// stack changes and one is added, against the target of issue 10.4: at most 1.05x those images'
// new blob bytes + 2 MiB. A full bundle is made from a seeded upstream (real docker-registry),
// loaded into a site registry with --receipt, then the update is bundled --since that receipt.
//
//   node bench/incremental.ts [--images 12] [--own-mb 8] [--base-mb 16] [--change-mb 24] [--add-mb 16] [--site-tools]
//
// --site-tools carries this host's site tools in both bundles (they do not change between the
// two runs: the incremental one carries none of them); the default bundles with --no-site-tools.
import { stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { seedImages, type ImageSpec } from '../test/support/images.ts';
import { tempDir } from '../test/support/process.ts';
import { startRegistry } from '../test/support/registry.ts';
import { runSealift } from '../test/support/cli.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '12' },
    'own-mb': { type: 'string', default: '8' },
    'base-mb': { type: 'string', default: '16' },
    'change-mb': { type: 'string', default: '24' },
    'add-mb': { type: 'string', default: '16' },
    'site-tools': { type: 'boolean', default: false },
  },
});
const MiB = 1024 * 1024;
const mb = (n: number) => `${(n / MiB).toFixed(2)} MiB`;

async function sealift(argv: string[]): Promise<{ seconds: number; json: Record<string, unknown> }> {
  const t0 = performance.now();
  const r = await runSealift([...argv, '--json'], { timeout: 1_800_000 });
  if (r.exitCode !== 0) throw new Error(`sealift ${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.slice(-2000)}`);
  return { seconds: (performance.now() - t0) / 1000, json: JSON.parse(r.stdout) as Record<string, unknown> };
}

async function main(): Promise<void> {
  await using tmp = await tempDir('sealift-bench-incremental-');
  await using upstream = await startRegistry();
  await using site = await startRegistry();
  const n = Number(args.images);
  const tools = args['site-tools'] ? [] : ['--no-site-tools'];
  const specs: ImageSpec[] = Array.from({ length: n }, (_, i) => ({
    ref: `docker.io/bench/image-${i}:v1`,
    base: `base-${i % 3}`,
    baseLayers: [Number(args['base-mb']) * MiB],
    layers: [Number(args['own-mb']) * MiB],
  }));
  const first = await seedImages(upstream.host, specs, { workDir: tmp.path });
  const list = join(tmp.path, 'images.txt');
  await writeFile(list, `${first.map((s) => s.testRef).join('\n')}\n`);
  const bundle = (name: string, extra: string[]) =>
    sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      join(tmp.path, 'out'),
      '--name',
      name,
      '--plain-http',
      upstream.host,
      ...tools,
      ...extra,
    ]);
  const full = await bundle('full', []);
  const receipt = join(tmp.path, 'receipt.json');
  const loaded = await sealift([
    'load',
    join(tmp.path, 'out', 'full.tar'),
    '--registry',
    site.host,
    '--plain-http',
    '--receipt',
    receipt,
  ]);
  // one image changes (same tag, a new layer over a new base), one is added
  const second = await seedImages(
    upstream.host,
    [
      { ref: 'docker.io/bench/image-0:v1', layers: [Number(args['change-mb']) * MiB] },
      { ref: 'docker.io/bench/added:v1', layers: [Number(args['add-mb']) * MiB] },
    ],
    { workDir: tmp.path },
  );
  await writeFile(list, `${[...first.slice(1), ...second].map((s) => s.testRef).join('\n')}\n`);
  const inc = await bundle('update', ['--since', receipt]);
  const fullBytes = (await stat(join(tmp.path, 'out', 'full.tar'))).size;
  const incBytes = (await stat(join(tmp.path, 'out', 'update.tar'))).size;
  const newBytes = second.reduce((t, s) => t + Object.values(s.blobs).reduce((a, b) => a + b, 0), 0);
  const target = 1.05 * newBytes + 2 * MiB;
  const incLoad = await sealift(['load', join(tmp.path, 'out', 'update.tar'), '--registry', site.host, '--plain-http']);
  const lines = [
    `images ${n} (+1 changed, +1 added), ${args['site-tools'] ? 'site tools carried (unchanged between the runs)' : '--no-site-tools'}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `full bundle         ${mb(fullBytes)}  (bundle ${full.seconds.toFixed(1)} s, load --receipt ${loaded.seconds.toFixed(1)} s)`,
    `new blob bytes      ${mb(newBytes)}  (the changed and the added image's configs and layers)`,
    `incremental bundle  ${mb(incBytes)}  (bundle --since ${inc.seconds.toFixed(1)} s, load ${incLoad.seconds.toFixed(1)} s)`,
    `target              ${mb(target)}  (1.05 x new + 2 MiB): ${incBytes <= target ? 'met' : 'MISSED'}, ${(incBytes / newBytes).toFixed(3)}x the new bytes, ${mb(incBytes - newBytes)} over them`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (incBytes > target) process.exitCode = 1;
}

await main();
