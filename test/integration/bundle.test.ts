// `sealift bundle --imagelist` end to end, as a user runs it, against a real registry seeded by
// skopeo: digests equal the source's, skopeo reads the layout, shared layers are stored once,
// `bundle verify` catches a flipped byte, a missing reference names itself and writes nothing,
// and a SIGKILLed run resumes fetching only what was missing (a cut layer from where it stopped),
// every blob written once, straight into the tar (no copy of it in the work dir).
import { execa } from 'execa';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleTarOrder } from '../../src/bundle-format/index.ts';
import { requireTool } from '../../src/tools.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { runSealift, SEALIFT_BIN } from '../support/cli.ts';

const BIG = 210 * 1024 * 1024;
let registry: TestRegistry;
let proxy: FaultProxy;
let work: Awaited<ReturnType<typeof tempDir>>;
let images: SeededImage[];
let listFile: string;

const sealift = (args: string[], opts: { reject?: boolean } = {}) =>
  opts.reject
    ? execa(process.execPath, [SEALIFT_BIN, ...args], { cwd: work.path, env: { CI: 'true' } })
    : runSealift(args, { cwd: work.path });

const mirrorFlags = () => [
  '--plain-http',
  proxy.host,
  '--mirror',
  `docker.io=${proxy.host}`,
  '--mirror',
  `quay.io=${proxy.host}`,
  '--mirror',
  `gcr.io=${proxy.host}`,
];

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  images = await seedImages(
    registry.host,
    [
      {
        ref: 'docker.io/istio/pilot:1.23.2',
        platforms: ['linux/amd64', 'linux/arm64'],
        base: 'distroless',
        baseLayers: [2 << 20, 512 << 10],
        layers: [1 << 20],
      },
      {
        ref: 'docker.io/istio/proxyv2:1.23.2',
        platforms: ['linux/amd64', 'linux/arm64'],
        base: 'distroless',
        format: 'docker',
        layers: [3 << 20],
      },
      {
        ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1',
        base: 'distroless',
        format: 'docker',
        layers: [1 << 20],
      },
      {
        ref: 'gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.16.0',
        platforms: ['linux/amd64', 'linux/arm64', 'linux/s390x'],
        layers: [512 << 10],
      },
      { ref: 'docker.io/kserve/huggingfaceserver:v0.15.2', base: 'distroless', layers: [BIG], uncompressed: true },
    ],
    { workDir: work.path },
  );
  const queue = images[3]!;
  listFile = join(work.path, 'images.txt');
  await writeFile(
    listFile,
    [
      '# images for the test bundle',
      'docker.io/istio/pilot:1.23.2',
      'istio/proxyv2:1.23.2',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@${queue.digest}`,
      'docker.io/kserve/huggingfaceserver:v0.15.2',
      '',
    ].join('\n'),
  );
}, 600_000);

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

interface BundleJson {
  images: { reference: string; digest: string; sourceDigest: string; selection: string; size: number }[];
  totals: { blobs: number; blobBytes: number; imageBytes: number; savedBySharing: number };
}

describe('sealift bundle --imagelist', () => {
  it('is killed mid-transfer, resumes fetching only what was missing, and the bundle is digest-exact', async () => {
    const out = join(work.path, 'bundles');
    const args = [
      'bundle',
      '--imagelist',
      listFile,
      '-o',
      out,
      '--json',
      '--concurrency',
      '3',
      '--no-site-tools',
      ...mirrorFlags(),
    ];
    // run 1: SIGKILL once the big layer is flowing
    const big = Object.entries(images[4]!.blobs).find(([, s]) => s >= BIG)![0];
    const child = execa(process.execPath, [SEALIFT_BIN, ...args], {
      reject: false,
      cwd: work.path,
      buffer: false,
    });
    let bigBytes = 0;
    let lineBuf = '';
    // what run 1 reported written: a blob's blob:done comes after it is on disk and in the journal
    const storedAfterKill = new Set<string>();
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (d: Buffer) => {
        lineBuf += d.toString();
        const lines = lineBuf.split('\n');
        lineBuf = lines.pop() ?? '';
        for (const l of lines) {
          try {
            const e = JSON.parse(l) as { type: string; digest?: string; bytes?: number; skipped?: string };
            if (e.type === 'blob:progress' && e.digest === big) bigBytes += e.bytes ?? 0;
            if (e.type === 'blob:done' && !e.skipped && e.digest) storedAfterKill.add(e.digest.slice(7));
          } catch {
            /* not an event */
          }
        }
        if (bigBytes > 48 << 20) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      void child.then(() => resolve());
    });
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');
    expect(storedAfterKill.size).toBeGreaterThan(0);
    expect(storedAfterKill.has(big.slice(7))).toBe(false);
    // the blobs went straight into the tar, which is still under its temp name
    expect((await readdir(out)).sort()).toEqual([
      '.images.tar.journal',
      '.images.tar.tmp',
      'images.lock',
      'images.work',
    ]);
    await expect(stat(join(out, 'images.work', 'images', 'blobs', 'sha256', big.slice(7)))).rejects.toThrow();
    await expect(stat(join(out, 'images.tar'))).rejects.toThrow();

    // run 2, through faults: completes, and GETs no blob that run 1 had stored
    proxy.inject({ fault: 'reset', match: /^GET \/v2\/.*\/manifests\//, times: 2 });
    proxy.inject({ fault: '429', match: /^GET \/v2\/.*\/manifests\//, times: 1, retryAfter: 1 });
    proxy.inject({ fault: 'truncate', match: /^GET .*\/blobs\/sha256:/, times: 2 });
    proxy.inject({ fault: '500', match: /^GET .*\/blobs\/sha256:/, times: 2 });
    const mark = proxy.requests.length;
    const run = await sealift(args);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(proxy.pending()).toBe(0);
    expect(run.stderr).toContain('"type":"retry"');
    const fetched = proxy.requests.slice(mark).filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
    for (const r of fetched) expect(storedAfterKill.has(r.path.split('sha256:')[1]!)).toBe(false);
    // the big layer continued from the bytes run 1 had written (HTTP Range), it did not start over
    const bigGets = fetched.filter((r) => r.path.endsWith(big));
    expect(bigGets.length).toBeGreaterThan(0);
    const received = run.stderr
      .split('\n')
      .filter((l) => l.includes('"blob:progress"') && l.includes(big))
      .map((l) => (JSON.parse(l) as { bytes: number }).bytes)
      .filter((n) => n > 0)
      .reduce((a, b) => a + b, 0);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(Number(images[4]!.blobs[big]) - (10 << 20));
    expect(run.stderr).toContain(`"resuming ${big} of docker.io/kserve/huggingfaceserver:v0.15.2 at byte`);

    const result = JSON.parse(run.stdout) as { pack: { files: { path: string; size: number }[] }; index: BundleJson };
    const tarPath = join(out, 'images.tar');
    expect(result.pack.files.map((f) => f.path)).toEqual([tarPath]);
    await expect(stat(join(out, 'images.work'))).rejects.toThrow(); // the work dir is gone once packed

    // digests: the source's, by the platform rules
    const [pilot, proxyv2, cm, queue, hf] = images as [SeededImage, SeededImage, SeededImage, SeededImage, SeededImage];
    const byRef = new Map(result.index.images.map((i) => [i.reference, i]));
    expect(byRef.get('docker.io/istio/pilot:1.23.2')).toMatchObject({
      digest: pilot.platforms['linux/amd64'],
      sourceDigest: pilot.digest,
      selection: 'platform',
    });
    expect(byRef.get('docker.io/istio/proxyv2:1.23.2')).toMatchObject({
      digest: proxyv2.platforms['linux/amd64'],
      selection: 'platform',
    });
    expect(byRef.get('quay.io/jetstack/cert-manager-controller:v1.16.1')).toMatchObject({
      digest: cm.digest,
      selection: 'exact',
    });
    expect(byRef.get(`gcr.io/knative-releases/knative.dev/serving/cmd/queue@${queue.digest}`)).toMatchObject({
      digest: queue.digest,
      selection: 'exact',
    });
    expect(byRef.get('docker.io/kserve/huggingfaceserver:v0.15.2')).toMatchObject({ digest: hf.digest });

    // bytes: unique blobs once; the tar is their sum plus small metadata
    const tarSize = (await stat(tarPath)).size;
    expect(result.index.totals.savedBySharing).toBeGreaterThanOrEqual(2 * (2 << 20));
    expect(tarSize).toBeGreaterThan(result.index.totals.blobBytes);
    expect(tarSize - result.index.totals.blobBytes).toBeLessThan(1 << 20);

    // GNU tar lists it, in the format's order: checksums, bundle.json, then the rest
    const listing = (await execa('tar', ['-tvf', tarPath])).stdout.split('\n').map((l) => l.split(/\s+/).pop()!);
    expect(listing.slice(0, 2)).toEqual(['checksums.sha256', 'bundle.json']);
    expect(listing).toEqual(bundleTarOrder(listing));
    expect(listing).toContain(`images/blobs/sha256/${big.slice(7)}`);

    // an independent reader: extract with tar, inspect with skopeo
    const x = join(work.path, 'extracted');
    await mkdir(x);
    await execa('tar', ['-xf', tarPath, '-C', x]);
    const lock = JSON.parse(await readFile(join(x, 'imagelists', 'images.lock.json'), 'utf8')) as {
      images: { reference: string; digest: string }[];
    };
    expect(lock.images.find((i) => i.reference === 'docker.io/istio/pilot:1.23.2')?.digest).toBe(
      pilot.platforms['linux/amd64'],
    );
    const inspect = async (ref: string) =>
      JSON.parse(
        (
          await execa(requireTool('skopeo'), ['--insecure-policy', 'inspect', `oci:${join(x, 'images')}:${ref}`], {
            env: { ...process.env, XDG_RUNTIME_DIR: work.path },
          })
        ).stdout,
      ) as { Digest: string; Architecture: string };
    // ref.name is the full reference, so images that share a tag are told apart
    expect(await inspect('docker.io/istio/pilot:1.23.2')).toMatchObject({
      Digest: pilot.platforms['linux/amd64'],
      Architecture: 'amd64',
    });
    expect((await inspect(hf.ref)).Digest).toBe(hf.digest);
    // the pinned index kept every platform and their blobs
    for (const d of Object.keys(queue.blobs))
      await expect(stat(join(x, 'images', 'blobs', 'sha256', d.slice(7)))).resolves.toBeTruthy();

    // verify: OK, then a flipped byte inside a blob is named
    const ok = await sealift(['bundle', 'verify', tarPath]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/OK: \d+ files/);
    const fh = await open(tarPath, 'r+');
    const at = Math.floor(tarSize / 2);
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = (b[0] ?? 0) ^ 0xff;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const bad = await sealift(['bundle', 'verify', tarPath]);
    expect(bad.exitCode).toBe(10);
    expect(bad.stderr).toContain('images.tar: sha256 is');
    expect(bad.stderr).toMatch(/images\/blobs\/sha256\/[a-f0-9]{64}: sha256 is [a-f0-9]{64}, checksums.sha256 says/);
  });

  it('names a reference that does not exist and writes no bundle; splits into parts that verify', async () => {
    const out = join(work.path, 'small');
    const missing = join(work.path, 'missing.txt');
    await writeFile(missing, 'docker.io/istio/pilot:1.23.2\ndocker.io/istio/nothere:9.9.9\n');
    const r = await sealift(['bundle', '--imagelist', missing, '-o', out, '--no-site-tools', ...mirrorFlags()]);
    expect(r.exitCode).toBe(9);
    expect(r.stderr).toContain('docker.io/istio/nothere:9.9.9');
    expect(r.stderr).toContain('no bundle was written');
    expect((await readdir(out)).filter((n) => n.endsWith('.tar'))).toEqual([]);

    const list = join(work.path, 'few.txt');
    await writeFile(
      list,
      'docker.io/istio/pilot:1.23.2\nistio/proxyv2:1.23.2\nquay.io/jetstack/cert-manager-controller:v1.16.1\n',
    );
    const s = await sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      out,
      '--split-size',
      '1M',
      '--all-platforms',
      '--json',
      '--no-site-tools',
      ...mirrorFlags(),
    ]);
    expect(s.exitCode, s.stderr).toBe(0);
    const parts = (await readdir(out)).filter((n) => n.startsWith('few.tar.part-')).sort();
    expect(parts.length).toBeGreaterThan(3);
    for (const p of parts.slice(0, -1)) expect((await stat(join(out, p))).size).toBe(1 << 20);
    const sums = await readFile(join(out, 'few.tar.sha256'), 'utf8');
    expect(sums.trim().split('\n')).toHaveLength(parts.length);
    await execa('sha256sum', ['-c', 'few.tar.sha256'], { cwd: out });
    const idx = JSON.parse(s.stdout) as { index: BundleJson };
    expect(idx.index.images.find((i) => i.reference === 'docker.io/istio/pilot:1.23.2')?.digest).toBe(
      images[0]!.digest,
    );
    const v = await sealift(['bundle', 'verify', join(out, 'few.tar.part-000'), '--json']);
    expect(v.exitCode, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ images: 3, parts: parts.length });
  });
});
