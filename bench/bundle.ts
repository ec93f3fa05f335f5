// Benchmark: the same images bundled by `sealift bundle --imagelist`, by `skopeo copy` per image
// into directories (sequential, as a shell loop would), and by `crane pull` when scripts/setup.sh
// built it (SEALIFT_SETUP_BENCH=1), in one run, from one real docker-registry on loopback.
// Prints wall time, bytes on disk and peak memory (max RSS from /usr/bin/time) of each.
//
//   node bench/bundle.ts [--scale 1] [--concurrency 4] [--keep DIR]
//
// The image set (scale 1): 32 images, about 2.1 GB of unique blobs, with shared bases as real
// stacks have them: 10 images on a 150 MB "python" base, 3 on a 400 MB "cuda" base with 280 MB
// own layers, 16 on a small "distroless" base, 3 multi-arch (only linux/amd64 is pulled, by all).
// Layers are real tar files (gzip, except the cuda images' own layers), made by
// test/support/images.ts and pushed with skopeo.
import { execa } from 'execa';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findTool, PROJECT_ROOT, requireTool } from '../src/tools.ts';
import { seedImages, type ImageSpec } from '../test/support/images.ts';
import { tempDir } from '../test/support/process.ts';
import { startRegistry } from '../test/support/registry.ts';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
    keep: { type: 'string' },
  },
});
const S = Number(args.scale);
const MB = 1000 * 1000;
const mb = (n: number) => Math.max(64 * 1024, Math.round(n * MB * S));

function imageSet(): ImageSpec[] {
  const specs: ImageSpec[] = [];
  for (let i = 0; i < 10; i++) {
    specs.push({
      ref: `docker.io/kserve/runtime-${i}:v0.15.2`,
      base: 'python',
      baseLayers: [mb(120), mb(30)],
      layers: [mb(40)],
      format: i % 2 ? 'docker' : 'oci',
    });
  }
  for (let i = 0; i < 3; i++) {
    specs.push({
      ref: `nvcr.io/nvidia/tritonserver-${i}:24.08-py3`,
      base: 'cuda',
      baseLayers: [mb(400)],
      layers: [mb(280)],
      uncompressed: true,
    });
  }
  for (let i = 0; i < 16; i++) {
    specs.push({
      ref: `gcr.io/knative-releases/knative.dev/serving/cmd/c${i}:v1.16.0`,
      base: 'distroless',
      baseLayers: [mb(8), mb(2)],
      layers: [mb(15)],
    });
  }
  for (let i = 0; i < 3; i++) {
    specs.push({
      ref: `quay.io/jetstack/cert-manager-${i}:v1.16.1`,
      platforms: ['linux/amd64', 'linux/arm64'],
      base: 'distroless',
      baseLayers: [mb(8), mb(2)],
      layers: [mb(20)],
      format: 'docker',
    });
  }
  return specs;
}

interface Measured {
  tool: string;
  seconds: number;
  bytes: number;
  peakRssMiB: number;
  note: string;
}

/** Runs a command under /usr/bin/time; returns wall seconds and max RSS (KiB). */
async function timed(
  cmd: string,
  argv: string[],
  opts: { cwd?: string } = {},
): Promise<{ seconds: number; maxRssKiB: number }> {
  const out = join(work.path, `time-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const r = await execa('/usr/bin/time', ['-f', '%e %M', '-o', out, cmd, ...argv], {
    reject: false,
    cwd: opts.cwd ?? work.path,
    env: { ...process.env, XDG_RUNTIME_DIR: work.path },
  });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.exitCode}):\n${r.stderr.slice(-3000)}`);
  const [secs = '0', rss = '0'] = (await readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ');
  return { seconds: Number(secs), maxRssKiB: Number(rss) };
}

async function duBytes(path: string): Promise<number> {
  const st = await stat(path);
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of await readdir(path, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size;
  return n;
}

const work = args.keep
  ? { path: args.keep, [Symbol.asyncDispose]: async () => undefined }
  : await tempDir('sealift-bench-');
const registry = await startRegistry({ dataDir: join(work.path, 'registry') });
try {
  const specs = imageSet();
  console.log(`generating and seeding ${specs.length} images with skopeo ...`);
  const t0 = Date.now();
  const images = await seedImages(registry.host, specs, { workDir: work.path, concurrency: 2 });
  const unique = new Map<string, number>();
  let perImage = 0;
  for (const img of images) for (const [d, s] of Object.entries(img.blobs)) unique.set(d, s);
  // what a per-image copy stores: each image's linux/amd64 blobs
  for (const spec of specs) {
    const own = (spec.layers ?? []).reduce((a, b) => a + b, 0);
    const base = spec.base ? (spec.baseLayers ?? []).reduce((a, b) => a + b, 0) : 0;
    perImage += own + base;
  }
  const registryBytes = [...unique.values()].reduce((a, b) => a + b, 0);
  console.log(
    `seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${images.length} images, ${unique.size} blobs, ${(registryBytes / MB).toFixed(0)} MB in the registry (all platforms), ~${(perImage / MB).toFixed(0)} MB of layer data summed per image`,
  );

  const host = registry.host;
  const list = join(work.path, 'images.txt');
  await writeFile(list, `${images.map((i) => i.ref).join('\n')}\n`);
  const results: Measured[] = [];

  // sealift
  const out = join(work.path, 'sealift-out');
  const mirrors = ['docker.io', 'nvcr.io', 'gcr.io', 'quay.io'].flatMap((h) => ['--mirror', `${h}=${host}`]);
  // every sealift run bundles a list from the same loopback registry, through the same mirrors
  const bundleList = (imageList: string, outDir: string, extra: string[] = []) =>
    timed(process.execPath, [
      join(PROJECT_ROOT, 'bin/sealift.js'),
      'bundle',
      '--imagelist',
      imageList,
      '-o',
      outDir,
      ...extra,
      '--plain-http',
      host,
      ...mirrors,
      '--concurrency',
      args.concurrency!,
      '--json',
      '--no-site-tools', // images against skopeo: the carried tools are the same bytes on every run
    ]);
  const s = await bundleList(list, out);
  const tar = join(out, 'images.tar');
  results.push({
    tool: 'sealift bundle',
    seconds: s.seconds,
    bytes: await duBytes(tar),
    peakRssMiB: s.maxRssKiB / 1024,
    note: `one tar, verified (${args.concurrency} blob transfers at once)`,
  });
  // the same without the tar: the verified directory bundle (what crane's layout compares with)
  const dirOut = join(work.path, 'sealift-dir');
  const d = await bundleList(list, dirOut, ['--no-pack']);
  results.push({
    tool: 'sealift bundle --no-pack',
    seconds: d.seconds,
    bytes: await duBytes(join(dirOut, 'images.work')),
    peakRssMiB: d.maxRssKiB / 1024,
    note: 'directory bundle with checksums, no tar',
  });
  await rm(dirOut, { recursive: true, force: true });
  const v = await timed(process.execPath, [join(PROJECT_ROOT, 'bin/sealift.js'), 'bundle', 'verify', tar]);
  results.push({
    tool: 'sealift bundle verify',
    seconds: v.seconds,
    bytes: 0,
    peakRssMiB: v.maxRssKiB / 1024,
    note: 're-hash of the whole tar',
  });

  // skopeo copy per image into dir:, sequentially
  const skopeo = requireTool('skopeo');
  const sk = join(work.path, 'skopeo-out');
  await mkdir(sk, { recursive: true });
  let skSecs = 0;
  let skPeak = 0;
  for (const [i, img] of images.entries()) {
    const r = await timed(skopeo, [
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      `docker://${img.testRef}`,
      `dir:${join(sk, String(i))}`,
    ]);
    skSecs += r.seconds;
    skPeak = Math.max(skPeak, r.maxRssKiB);
  }
  results.push({
    tool: 'skopeo copy (per image, dir:)',
    seconds: skSecs,
    bytes: await duBytes(sk),
    peakRssMiB: skPeak / 1024,
    note: `${images.length} runs, one after another; no verification pass`,
  });

  const crane = findTool('crane');
  if (crane) {
    const cr = join(work.path, 'crane-out');
    const r = await timed(crane, [
      'pull',
      '--insecure',
      '--platform',
      'linux/amd64',
      '--format',
      'oci',
      ...images.map((i) => i.testRef),
      cr,
    ]);
    results.push({
      tool: 'crane pull (one OCI layout)',
      seconds: r.seconds,
      bytes: await duBytes(cr),
      peakRssMiB: r.maxRssKiB / 1024,
      note: 'all images in one call',
    });
  } else {
    console.log('crane: not built (run SEALIFT_SETUP_BENCH=1 bash scripts/setup.sh): skipped');
  }

  // memory does not grow with image size: the same run on the small images only
  const smallList = join(work.path, 'small.txt');
  await writeFile(
    smallList,
    `${images
      .filter((i) => i.ref.startsWith('gcr.io'))
      .map((i) => i.ref)
      .join('\n')}\n`,
  );
  const small = await bundleList(smallList, join(work.path, 'small-out'));
  results.push({
    tool: 'sealift bundle (16 small images)',
    seconds: small.seconds,
    bytes: await duBytes(join(work.path, 'small-out', 'small.tar')),
    peakRssMiB: small.maxRssKiB / 1024,
    note: 'peak memory for comparison',
  });

  const rows = results.map((r) => [
    r.tool,
    r.seconds.toFixed(1),
    r.bytes ? (r.bytes / MB).toFixed(0) : '-',
    r.peakRssMiB.toFixed(0),
    r.note,
  ]);
  const head = ['TOOL', 'WALL s', 'DISK MB', 'PEAK RSS MiB', 'NOTE'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  console.log([head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
  const sl = results[0]!;
  const sc = results.find((r) => r.tool.startsWith('skopeo'))!;
  console.log(
    `sealift vs skopeo: ${(sc.seconds / sl.seconds).toFixed(2)}x faster, ${(sc.bytes / sl.bytes).toFixed(2)}x fewer bytes on disk`,
  );
  console.log(JSON.stringify({ images: images.length, uniqueBlobBytes: registryBytes, results }));
} finally {
  await registry.stop();
  if (!args.keep) await rm(work.path, { recursive: true, force: true });
}
