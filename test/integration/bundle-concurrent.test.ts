// Issue 15 class 6: concurrent `bundle` runs with one -o and one name. The lock beside the work
// directory lets one run at a time in: every run that exits 0 leaves a tar that verifies and holds
// every image; a run that loses says which run holds the lock; a lock left by a SIGKILLed run is
// stale and the next run takes it over and finishes the bundle.
import { execa } from 'execa';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSealift, SEALIFT_BIN } from '../support/cli.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

const PAIRS = 6;
let registry: TestRegistry;
let work: Awaited<ReturnType<typeof tempDir>>;
let images: SeededImage[];
let listFile: string;

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  images = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', platforms: ['linux/amd64', 'linux/arm64'], layers: [3 << 20] },
      { ref: 'docker.io/istio/proxyv2:1.23.2', base: 'distroless', layers: [2 << 20] },
      { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1', base: 'distroless', format: 'docker' },
      { ref: 'gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.16.0', layers: [8 << 20], uncompressed: true },
    ],
    { workDir: work.path },
  );
  listFile = join(work.path, 'stack.txt');
  await writeFile(listFile, `${images.map((i) => i.testRef).join('\n')}\n`);
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

const bundleArgs = (out: string) => [
  SEALIFT_BIN,
  'bundle',
  '--imagelist',
  listFile,
  '-o',
  out,
  '--plain-http',
  registry.host,
  '--no-site-tools',
];

const bundleRun = (out: string) =>
  execa(process.execPath, bundleArgs(out), { reject: false, cwd: work.path, env: { CI: 'true' } });

interface VerifyJson {
  ok?: boolean;
  images: number;
}

describe('concurrent bundle runs into one output', () => {
  it(`${PAIRS} pairs at once: every exit-0 tar verifies with every image, every loser names the holder`, async () => {
    const out = join(work.path, 'bundles');
    const tar = join(out, 'stack.tar');
    let ok = 0;
    let refused = 0;
    let verified = 0;
    for (let pair = 0; pair < PAIRS; pair++) {
      // the second run starts a moment later in half of the pairs: both orders of arrival
      const a = bundleRun(out);
      if (pair % 2) await new Promise((r) => setTimeout(r, 150));
      const b = bundleRun(out);
      const runs = await Promise.all([a, b]);
      for (const r of runs) {
        if (r.exitCode === 0) {
          ok++;
          continue;
        }
        // the only acceptable failure: the lock, named with the holder's pid, and nothing else
        expect(r.exitCode, r.stderr).toBe(14);
        expect(r.stderr).toMatch(/error\[LOCKED\]: bundle .*stack is in use by another sealift run \(pid \d+ on /);
        expect(r.stderr).toContain('nothing was changed');
        expect(r.stderr).not.toContain('INTERNAL');
        refused++;
      }
      expect(runs.some((r) => r.exitCode === 0)).toBe(true);
      const v = await runSealift(['bundle', 'verify', tar, '--json'], { cwd: work.path });
      expect(v.exitCode, v.stdout + v.stderr).toBe(0);
      expect((JSON.parse(v.stdout) as VerifyJson).images).toBe(images.length);
      verified++;
      // nothing left behind: no lock, no work dir, no temp tar
      expect((await readdir(out)).sort()).toEqual(['stack.tar', 'stack.tar.sha256']);
    }
    console.log(
      `concurrent bundle pairs: ${PAIRS} pairs, ${ok} runs exited 0, ${refused} refused (LOCKED), ${verified} of ${PAIRS} final tars verified with all ${images.length} images`,
    );
    expect(ok + refused).toBe(2 * PAIRS);
  }, 600_000);

  it('a lock left by a SIGKILLed run is stale: the next run takes it over and finishes', async () => {
    const out = join(work.path, 'killed');
    const lock = join(out, 'stack.lock');
    const child = execa(process.execPath, bundleArgs(out), { reject: false, cwd: work.path, env: { CI: 'true' } });
    for (let i = 0; i < 400; i++) {
      if (
        await stat(lock).then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await child;
    expect((await readdir(out)).sort()).toContain('stack.lock');
    const next = await runSealift(bundleArgs(out).slice(1), { cwd: work.path });
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stderr).toMatch(new RegExp(`took over from an earlier run that is gone \\(pid ${child.pid}\\)`));
    const v = await runSealift(['bundle', 'verify', join(out, 'stack.tar'), '--json'], { cwd: work.path });
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect((JSON.parse(v.stdout) as VerifyJson).images).toBe(images.length);
    expect(await readdir(out)).not.toContain('stack.lock');
  }, 300_000);
});
