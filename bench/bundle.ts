// Benchmark: the same images bundled by `sealift bundle --imagelist` (packed tar, --no-pack
// directory, --compress gzip and zstd), by `skopeo copy` per image into directories (sequential,
// as a shell loop would), and by `crane pull` when scripts/setup.sh built it
// (SEALIFT_SETUP_BENCH=1), in one run, from one real docker-registry on loopback. Prints wall
// time, bytes on disk, peak memory (max RSS from /usr/bin/time) and bytes written to disk
// (write_bytes of /proc/<pid>/io, read by a shell wrapper after the command exits: a reaped
// child's I/O counts into its parent's) of each, the ratios the issue sets targets for (packed
// <= 0.8x crane's wall time, write bytes <= 1.05x the bundle, peak RSS <= 120 MiB and flat in
// image size), and what gzip and zstd gain on the layers and on the carried site tools. Every
// run starts after a sync (nothing dirty left by the run before it); crane's time is printed
// once more with a `sync -f` of its output, since sealift's tar is fsynced before it is renamed in.
//
//   node bench/bundle.ts [--scale 1] [--concurrency 4] [--entry exe|source] [--keep DIR]
//
// sealift runs as its single executable (bench/sealift-command.ts), and once more from the
// sources for comparison.
//
// The image set (scale 1): 32 images, about 2.1 GB of unique blobs, with shared bases as real
// stacks have them: 10 images on a 150 MB "python" base, 3 on a 400 MB "cuda" base with 280 MB
// own layers, 16 on a small "distroless" base, 3 multi-arch (only linux/amd64 is pulled, by all).
// Layers are real tar files (gzip, except the cuda images' own layers), made by
// test/support/images.ts and pushed with skopeo.
import { execa } from 'execa';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { compressor } from '../src/bundle/pack.ts';
import { findTool, requireTool, TOOLS_DIR } from '../src/tools.ts';
import { seedImages, type ImageSpec } from '../test/support/images.ts';
import { tempDir } from '../test/support/process.ts';
import { startRegistry } from '../test/support/registry.ts';
import { parseEntry, sealiftCommand } from './sealift-command.ts';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
    entry: { type: 'string', default: 'exe' },
    keep: { type: 'string' },
  },
});
const sealift = await sealiftCommand(parseEntry(args.entry));
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

/** one row of the table: a timed run and what it made */
interface Measured extends Timed {
  tool: string;
  bytes: number;
  peakRssMiB: number;
  note: string;
}

interface Timed {
  seconds: number;
  cpuSeconds: number;
  /** CPU seconds the registry spent meanwhile (serving this run: nothing else uses it) */
  registryCpuSeconds: number;
  maxRssKiB: number;
  writeBytes: number;
  cancelledWriteBytes: number;
}

/**
 * Runs a command under /usr/bin/time (wall seconds, max RSS) inside a shell that prints its own
 * /proc/self/io once the command has exited: the kernel adds a reaped child's I/O counters to
 * its parent's, so the shell's write_bytes are the command's (the shell itself writes nothing).
 */
async function timed(
  cmd: string,
  argv: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Timed> {
  const tag = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const out = join(work.path, `time-${tag}`);
  const io = join(work.path, `io-${tag}`);
  // every run starts with nothing dirty in the page cache: else a run pays for the write-back of
  // what ran before it (the seeding's 2 GB before the first sealift run)
  await execa('sync');
  const registryBefore = await registryCpu();
  const r = await execa(
    '/usr/bin/time',
    [
      '-f',
      '%e %M %U %S',
      '-o',
      out,
      'sh',
      '-c',
      '"$@"; rc=$?; cat /proc/$$/io > "$IO_OUT"; exit $rc',
      'sh',
      cmd,
      ...argv,
    ],
    {
      reject: false,
      cwd: opts.cwd ?? work.path,
      env: { ...process.env, XDG_RUNTIME_DIR: work.path, IO_OUT: io, ...opts.env },
    },
  );
  if (r.exitCode !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.exitCode}):\n${r.stderr.slice(-3000)}`);
  const registryCpuSeconds = (await registryCpu()) - registryBefore;
  const [secs = '0', rss = '0', user = '0', sys = '0'] = (await readFile(out, 'utf8'))
    .trim()
    .split('\n')
    .pop()!
    .split(' ');
  const ioText = await readFile(io, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(ioText)?.[1] ?? NaN);
  await rm(io, { force: true });
  return {
    seconds: Number(secs),
    cpuSeconds: Number(user) + Number(sys),
    registryCpuSeconds,
    maxRssKiB: Number(rss),
    writeBytes: field('write_bytes'),
    cancelledWriteBytes: field('cancelled_write_bytes'),
  };
}

/** user + system CPU seconds of the registry process so far (/proc/<pid>/stat, clock ticks of 1/100 s) */
async function registryCpu(): Promise<number> {
  const fields = (await readFile(`/proc/${registry.pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  // after "pid (comm) ": state is field 3, utime 14 and stime 15
  return (Number(fields[11]) + Number(fields[12])) / 100;
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
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  console.log(`load average before the runs: ${load} (${cpus().length} cores); sealift: ${sealift.label}`);
  await writeFile(list, `${images.map((i) => i.ref).join('\n')}\n`);
  const results: Measured[] = [];
  let craneSyncSeconds: number | undefined;
  const row = (tool: string, t: Timed, bytes: number, note: string): Measured => {
    const m = { ...t, tool, bytes, peakRssMiB: t.maxRssKiB / 1024, note };
    results.push(m);
    return m;
  };

  // sealift
  const mirrors = ['docker.io', 'nvcr.io', 'gcr.io', 'quay.io'].flatMap((h) => ['--mirror', `${h}=${host}`]);
  // every sealift run bundles a list from the same loopback registry, through the same mirrors
  const bundleList = (imageList: string, outDir: string, extra: string[] = [], run = sealift) =>
    timed(run.file, [
      ...run.prefix,
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
  const out = join(work.path, 'sealift-out');
  const tar = join(out, 'images.tar');
  const packed = row('sealift bundle', await bundleList(list, out), 0, '');
  packed.bytes = await duBytes(tar);
  packed.note = `one tar, written once, verified (${args.concurrency} blob transfers at once)`;
  // the same from the sources (type stripping at start, V8's default young generation)
  if (args.entry !== 'source') {
    const source = await sealiftCommand('source');
    const srcOut = join(work.path, 'sealift-source');
    const r = await bundleList(list, srcOut, [], source);
    row(
      'sealift bundle, node bin/sealift.js',
      r,
      await duBytes(join(srcOut, 'images.tar')),
      'the same, from the sources',
    );
    await rm(srcOut, { recursive: true, force: true });
  }
  // the same without the tar: the verified directory bundle (what crane's layout compares with)
  const dirOut = join(work.path, 'sealift-dir');
  const d = await bundleList(list, dirOut, ['--no-pack']);
  row('sealift bundle --no-pack', d, await duBytes(join(dirOut, 'images.work')), 'directory bundle with checksums');
  await rm(dirOut, { recursive: true, force: true });
  const v = await timed(sealift.file, [...sealift.prefix, 'bundle', 'verify', tar]);
  row('sealift bundle verify', v, 0, 're-hash of the whole tar');
  for (const c of ['gzip', 'zstd'] as const) {
    const cOut = join(work.path, `sealift-${c}`);
    const t = await bundleList(list, cOut, ['--compress', c]);
    const file = join(cOut, `images.tar${c === 'gzip' ? '.gz' : '.zst'}`);
    row(`sealift bundle --compress ${c}`, t, await duBytes(file), 'tar written once, then compressed in order');
    await rm(cOut, { recursive: true, force: true });
  }

  // skopeo copy per image into dir:, sequentially
  const skopeo = requireTool('skopeo');
  const sk = join(work.path, 'skopeo-out');
  await mkdir(sk, { recursive: true });
  const skTotal: Timed = {
    seconds: 0,
    cpuSeconds: 0,
    registryCpuSeconds: 0,
    maxRssKiB: 0,
    writeBytes: 0,
    cancelledWriteBytes: 0,
  };
  for (const [i, img] of images.entries()) {
    const r = await timed(skopeo, [
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      `docker://${img.testRef}`,
      `dir:${join(sk, String(i))}`,
    ]);
    skTotal.seconds += r.seconds;
    skTotal.cpuSeconds += r.cpuSeconds;
    skTotal.registryCpuSeconds += r.registryCpuSeconds;
    skTotal.maxRssKiB = Math.max(skTotal.maxRssKiB, r.maxRssKiB);
    skTotal.writeBytes += r.writeBytes;
  }
  row(
    'skopeo copy (per image, dir:)',
    skTotal,
    await duBytes(sk),
    `${images.length} runs, one after another; no verification pass`,
  );
  await rm(sk, { recursive: true, force: true });

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
    row('crane pull (one OCI layout)', r, await duBytes(cr), 'all images in one call');
    // sealift's tar is on disk (fsync) before it is renamed in; crane's files are in the page
    // cache when it exits: what it takes to get them on disk too
    const t0 = performance.now();
    await execa('sync', ['-f', cr]);
    craneSyncSeconds = (performance.now() - t0) / 1000;
    await rm(cr, { recursive: true, force: true });
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
  row(
    'sealift bundle (16 small images)',
    small,
    await duBytes(join(work.path, 'small-out', 'small.tar')),
    'peak memory for comparison',
  );

  const rows = results.map((r) => [
    r.tool,
    r.seconds.toFixed(1),
    r.cpuSeconds.toFixed(1),
    r.registryCpuSeconds.toFixed(1),
    r.bytes ? (r.bytes / MB).toFixed(0) : '-',
    r.peakRssMiB.toFixed(0),
    (r.writeBytes / MB).toFixed(0),
    r.bytes ? (r.writeBytes / r.bytes).toFixed(2) : '-',
    r.note,
  ]);
  const head = [
    'TOOL',
    'WALL s',
    'CPU s',
    'REGISTRY CPU s',
    'DISK MB',
    'PEAK RSS MiB',
    'WRITTEN MB',
    'WRITTEN/DISK',
    'NOTE',
  ];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  console.log([head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
  const sc = results.find((r) => r.tool.startsWith('skopeo'))!;
  const cr = results.find((r) => r.tool.startsWith('crane'));
  const target = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(
    `sealift packed vs skopeo: ${(packed.seconds / sc.seconds).toFixed(2)}x the wall time, ${(sc.bytes / packed.bytes).toFixed(2)}x fewer bytes on disk`,
  );
  if (cr)
    console.log(
      `sealift packed vs crane pull: ${(packed.seconds / cr.seconds).toFixed(2)}x the wall time (target <= 0.8x: ${target(packed.seconds <= 0.8 * cr.seconds)})`,
    );
  if (cr && craneSyncSeconds !== undefined)
    console.log(
      `crane pull, then sync -f of its files: ${(cr.seconds + craneSyncSeconds).toFixed(1)} s (sync ${craneSyncSeconds.toFixed(1)} s); sealift packed vs that: ${(packed.seconds / (cr.seconds + craneSyncSeconds)).toFixed(2)}x`,
    );
  if (cr)
    console.log(
      `CPU seconds, client + registry, on ${cpus().length} cores: sealift ${packed.cpuSeconds.toFixed(1)} + ${packed.registryCpuSeconds.toFixed(1)}, crane ${cr.cpuSeconds.toFixed(1)} + ${cr.registryCpuSeconds.toFixed(1)}`,
    );
  console.log(
    `sealift packed: wrote ${(packed.writeBytes / packed.bytes).toFixed(3)}x the bundle's size (target <= 1.05x: ${target(packed.writeBytes <= 1.05 * packed.bytes)}); peak RSS ${packed.peakRssMiB.toFixed(0)} MiB, ${small.maxRssKiB ? (small.maxRssKiB / 1024).toFixed(0) : '?'} MiB on the small images (target <= 120 MiB: ${target(packed.peakRssMiB <= 120)})`,
  );

  // what compression gains on the carried site tools (bin/: Go binaries and the sealift executable)
  const toolDir = join(TOOLS_DIR, 'site', 'linux-amd64');
  const tools = (await readdir(toolDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  const toolRows: { compression: string; bytes: number; seconds: number }[] = [];
  if (tools.length) {
    let raw = 0;
    for (const t of tools) raw += (await stat(join(toolDir, t))).size;
    toolRows.push({ compression: 'none', bytes: raw, seconds: 0 });
    for (const c of ['gzip', 'zstd'] as const) {
      const t0 = Date.now();
      let n = 0;
      for (const t of tools) {
        const sink = new Writable({
          write(chunk: Buffer, _e, cb) {
            n += chunk.length;
            cb();
          },
        });
        await pipeline(createReadStream(join(toolDir, t), { highWaterMark: 1 << 20 }), compressor(c), sink);
      }
      toolRows.push({ compression: c, bytes: n, seconds: (Date.now() - t0) / 1000 });
    }
    console.log(
      `site tools (${toolDir}: ${tools.join(', ')}), the packer's own compressors: ${toolRows.map((r) => `${r.compression} ${(r.bytes / MB).toFixed(0)} MB${r.seconds ? ` in ${r.seconds.toFixed(1)} s` : ''}`).join(', ')}`,
    );
  }
  console.log(JSON.stringify({ images: images.length, uniqueBlobBytes: registryBytes, results, siteTools: toolRows }));
} finally {
  await registry.stop();
  if (!args.keep) await rm(work.path, { recursive: true, force: true });
}
