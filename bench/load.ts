// Benchmark: `sealift load` of a bundle into an empty registry (from the file, and from stdin:
// `cat bundle.tar | sealift load -`) vs `skopeo copy` per image of the same data (sequential, as
// a shell loop would, and 4 at a time), in one run; then the no-op re-load. Real docker-registry
// instances on loopback, one per contender. Prints the ratios against the targets.
//
//   node bench/load.ts [--images 30] [--own-mb 24] [--base-mb 48] [--bases 3] [--concurrency 4] [--rounds 3]
//                      [--entry exe|source] [--keep DIR]
//
// sealift runs as its single executable, what the site has (bench/sealift-command.ts).
// The contenders take turns, `--rounds` times, each into a fresh empty registry, so that load
// from other processes on a shared machine falls on all of them alike; medians (and every time)
// print, with the machine's load average before and after.
// Layers are random bytes under a gzip media type: neither tool decompresses when copying
// (skopeo with --preserve-digests), so both move exactly the same bytes.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import pLimit from 'p-limit';
import { create as tarCreate } from 'tar';
import { requireTool } from '../src/tools.ts';
import { bundleTarOrder, serializeBundleIndex } from '../src/bundle-format/index.ts';
import { writeChecksums } from '../src/bundle/pack.ts';
import { bundleIndexOf } from '../test/support/bundles.ts';
import { startRegistry } from '../test/support/registry.ts';
import { tempDir } from '../test/support/process.ts';
import { parseEntry, sealiftCommand } from './sealift-command.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '30' },
    'own-mb': { type: 'string', default: '24' },
    'base-mb': { type: 'string', default: '48' },
    bases: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '4' },
    keep: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    entry: { type: 'string', default: 'exe' },
  },
});
const sealift = await sealiftCommand(parseEntry(args.entry));
const IMAGES = Number(args.images);
const OWN = Number(args['own-mb']) * 1024 * 1024;
const BASE = Number(args['base-mb']) * 1024 * 1024;
const BASES = Number(args.bases);
const MiB = 1024 * 1024;

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
}

/** Writes `size` random bytes to `path` in 4 MiB chunks, returning the descriptor. */
async function randomBlob(dir: string, size: number): Promise<Desc> {
  const tmp = join(dir, `tmp-${randomBytes(6).toString('hex')}`);
  const h = createHash('sha256');
  const out = createWriteStream(tmp);
  for (let left = size; left > 0;) {
    const chunk = randomBytes(Math.min(left, 4 * MiB));
    h.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    left -= chunk.length;
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  const hex = h.digest('hex');
  const { rename } = await import('node:fs/promises');
  await rename(tmp, join(dir, hex));
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size };
}

async function jsonBlob(dir: string, doc: unknown, mediaType: string): Promise<Desc> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(dir, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

async function buildBundle(root: string): Promise<{
  tar: string;
  layout: string;
  refs: { source: string; tag: string; repo: string; digest: string }[];
  bytes: number;
}> {
  const stage = join(root, 'stage');
  const layout = join(stage, 'images');
  const blobs = join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const bases: Desc[] = [];
  for (let i = 0; i < BASES; i++) bases.push(await randomBlob(blobs, BASE));
  const refs: { source: string; tag: string; repo: string; digest: string }[] = [];
  const manifests: (Desc & { annotations: Record<string, string> })[] = [];
  let bytes = bases.reduce((n, b) => n + b.size, 0);
  for (let i = 0; i < IMAGES; i++) {
    const own = await randomBlob(blobs, OWN);
    bytes += own.size;
    const layers = [bases[i % BASES] as Desc, own];
    const config = await jsonBlob(
      blobs,
      {
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
        config: {},
      },
      'application/vnd.oci.image.config.v1+json',
    );
    const m = await jsonBlob(
      blobs,
      { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers },
      'application/vnd.oci.image.manifest.v1+json',
    );
    const repo = `bench/app-${String(i).padStart(2, '0')}`;
    const tag = `v1.${i}`;
    const source = `docker.io/${repo}:${tag}`;
    refs.push({ source, tag, repo, digest: m.digest });
    manifests.push({ ...m, annotations: { 'org.opencontainers.image.ref.name': source, 'io.sealift.source': source } });
  }
  await writeFile(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
  );
  // bundle.json and checksums.sha256 by the writer's own functions: the real format
  await writeFile(
    join(stage, 'bundle.json'),
    serializeBundleIndex(
      bundleIndexOf(manifests.map((m, i) => ({ reference: refs[i]!.source, root: m, blobSizes: [] }))),
    ),
  );
  await writeChecksums(stage);
  const { readdir } = await import('node:fs/promises');
  const files = [
    'bundle.json',
    'images/oci-layout',
    'images/index.json',
    ...(await readdir(blobs)).map((f) => `images/blobs/sha256/${f}`),
  ];
  const tar = join(root, 'bench.tar');
  // the format's tar order: checksums.sha256 first, bundle.json next (a stream reads them before any blob)
  await tarCreate(
    { file: tar, cwd: stage, portable: true, noDirRecurse: true },
    bundleTarOrder(['checksums.sha256', ...files]),
  );
  return { tar, layout, refs, bytes };
}

async function timed<T>(f: () => Promise<T>): Promise<{ secs: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { secs: (performance.now() - t0) / 1000, value };
}

async function rawDigest(ref: string): Promise<string> {
  const r = await execa(requireTool('skopeo'), ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], {
    encoding: 'buffer',
  });
  return `sha256:${createHash('sha256').update(Buffer.from(r.stdout)).digest('hex')}`;
}

const load0 = loadavg().map((x) => x.toFixed(2));
const keep = args.keep;
const work = keep ? { path: keep, [Symbol.asyncDispose]: async () => {} } : await tempDir('sealift-bench-load-');
try {
  await mkdir(work.path, { recursive: true });
  console.log(
    `building a bundle: ${IMAGES} images, ${BASES} shared base layers of ${BASE / MiB} MiB, one own layer of ${OWN / MiB} MiB each ...`,
  );
  const bundle = await buildBundle(work.path);
  const tarSize = (await stat(bundle.tar)).size;
  console.log(
    `bundle ${bundle.tar}: ${(tarSize / MiB).toFixed(0)} MiB (${(bundle.bytes / MiB).toFixed(0)} MiB of unique layers)\n`,
  );
  const skopeo = requireTool('skopeo');
  // what skopeo needs first at a site (and sealift does not): the layout unpacked from the tar
  const unpackDir = join(work.path, 'unpacked');
  await mkdir(unpackDir, { recursive: true });
  const unpack = await timed(() => execa('tar', ['-xf', bundle.tar, '-C', unpackDir]));
  await rm(unpackDir, { recursive: true, force: true });

  // the first load of each round hashes the whole bundle (--recheck), as at a site that never saw
  // it; the re-load is what an operator's second run does (the unchanged file is not hashed again)
  const cacheEnv = { ...process.env, SEALIFT_CACHE_DIR: join(work.path, 'cache') };
  const load = (host: string, first: boolean) =>
    execa(
      sealift.file,
      [
        ...sealift.prefix,
        'load',
        bundle.tar,
        '--registry',
        host,
        '--plain-http',
        '--concurrency',
        String(args.concurrency),
        '--json',
        ...(first ? ['--recheck'] : []),
      ],
      { reject: false, env: cacheEnv },
    );
  /** the one-way link: the bundle arrives on stdin, as from `ssh build-host cat airgap.tar` */
  const loadPipe = (host: string) =>
    execa(
      'sh',
      [
        '-c',
        'cat "$0" | "$@" load - --registry "$LOAD_HOST" --plain-http --concurrency "$LOAD_CONCURRENCY" --json',
        bundle.tar,
        sealift.file,
        ...sealift.prefix,
      ],
      { reject: false, env: { ...cacheEnv, LOAD_HOST: host, LOAD_CONCURRENCY: String(args.concurrency) } },
    );
  const copy = (reg: string, r: { source: string; tag: string; repo: string }) =>
    execa(skopeo, [
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${bundle.layout}:${r.source}`,
      `docker://${reg}/${r.repo}:${r.tag}`,
    ]);
  /** every image has its bundle digest in the registry: same bytes for every contender */
  const check = async (host: string) => {
    for (const r of bundle.refs) {
      const d = await rawDigest(`${host}/${r.repo}:${r.tag}`);
      if (d !== r.digest) throw new Error(`${host}/${r.repo}:${r.tag} is ${d}, expected ${r.digest}`);
    }
  };
  const times = {
    sealift: [] as number[],
    noop: [] as number[],
    pipe: [] as number[],
    seq: [] as number[],
    seqNoop: [] as number[],
    par: [] as number[],
  };
  for (let round = 0; round < Number(args.rounds); round++) {
    {
      await using reg = await startRegistry();
      const first = await timed(() => load(reg.host, true));
      if (first.value.exitCode !== 0)
        throw new Error(`sealift load failed:\n${first.value.stdout}\n${first.value.stderr.slice(-2000)}`);
      const noop = await timed(() => load(reg.host, false));
      const pushed = (JSON.parse(noop.value.stdout) as { stats: { bytesPushed: number } }).stats.bytesPushed;
      if (noop.value.exitCode !== 0 || pushed !== 0)
        throw new Error(`sealift re-load failed or pushed ${pushed} bytes:\n${noop.value.stderr.slice(-2000)}`);
      await check(reg.host);
      times.sealift.push(first.secs);
      times.noop.push(noop.secs);
    }
    {
      await using reg = await startRegistry();
      const piped = await timed(() => loadPipe(reg.host));
      if (piped.value.exitCode !== 0)
        throw new Error(`sealift load - failed:\n${piped.value.stdout}\n${piped.value.stderr.slice(-2000)}`);
      await check(reg.host);
      times.pipe.push(piped.secs);
    }
    {
      await using reg = await startRegistry();
      const loop = async () => {
        for (const r of bundle.refs) await copy(reg.host, r);
      };
      const seq = await timed(loop);
      await check(reg.host);
      times.seq.push(seq.secs);
      times.seqNoop.push((await timed(loop)).secs);
    }
    {
      await using reg = await startRegistry();
      const limit = pLimit(Number(args.concurrency));
      const par = await timed(() => Promise.all(bundle.refs.map((r) => limit(() => copy(reg.host, r)))));
      await check(reg.host);
      times.par.push(par.secs);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
  };
  const runs = (xs: number[]) => `(runs: ${xs.map((x) => x.toFixed(2)).join(', ')})`;
  const fmt = (xs: number[]) =>
    `${median(xs).toFixed(2)} s  ${(bundle.bytes / MiB / median(xs)).toFixed(0).padStart(4)} MiB/s   ${runs(xs)}`;
  const load1 = loadavg().map((x) => x.toFixed(2));
  console.log(
    `${IMAGES} images, ${(bundle.bytes / MiB).toFixed(0)} MiB of unique blobs, into empty registries on loopback, median of ${args.rounds}:`,
  );
  console.log(
    `  sealift load (from the tar, one read: hashed as pushed, concurrency ${args.concurrency})  ${fmt(times.sealift)}`,
  );
  console.log(`  sealift load - (cat bundle.tar | sealift load -)                          ${fmt(times.pipe)}`);
  console.log(`  skopeo copy per image, one after another (from the extracted layout)     ${fmt(times.seq)}`);
  console.log(
    `  skopeo copy per image, ${args.concurrency} at a time (from the extracted layout)          ${fmt(times.par)}`,
  );
  console.log(
    `  sealift no-op re-load (everything present, 0 bytes pushed, file unchanged) ${median(times.noop).toFixed(2)} s   ${runs(times.noop)}`,
  );
  console.log(
    `  skopeo no-op re-copy, one after another (everything present)             ${median(times.seqNoop).toFixed(2)} s   ${runs(times.seqNoop)}`,
  );
  console.log(
    `  (not counted above: skopeo first needs the layout unpacked: tar -xf took ${unpack.secs.toFixed(2)} s and ${(tarSize / MiB).toFixed(0)} MiB more disk)`,
  );
  const ratio = (a: number[], b: number[]) => median(a) / median(b);
  const verdict = (x: number, target: number) =>
    `${x.toFixed(2)} (target <= ${target}: ${x <= target ? 'met' : 'NOT met'})`;
  console.log(`  sealift load / skopeo one at a time:   ${verdict(ratio(times.sealift, times.seq), 0.6)}`);
  console.log(
    `  sealift load / skopeo ${args.concurrency} at a time:      ${verdict(ratio(times.sealift, times.par), 0.8)}`,
  );
  console.log(`  sealift load - / skopeo one at a time: ${verdict(ratio(times.pipe, times.seq), 0.6)}`);
  console.log(
    `  sealift load - / skopeo ${args.concurrency} at a time:    ${verdict(ratio(times.pipe, times.par), 0.8)}`,
  );
  console.log(`  no-op re-load / cold load:             ${verdict(ratio(times.noop, times.sealift), 0.05)}`);
  console.log(
    `  machine: ${cpus().length} CPUs, load average (1/5/15 min) ${load0.join(' ')} before, ${load1.join(' ')} after; sealift: ${sealift.label}`,
  );
  console.log('  every image checked with skopeo inspect --raw after every run: same digests as the bundle');
} finally {
  if (!keep) await rm(work.path, { recursive: true, force: true });
}
