// A bundle made again under the same name (one image added to the list) copies the blobs the
// earlier tar already holds out of it, verified, and fetches from the registry only the new
// image's blobs; a damaged blob in the earlier tar is fetched again, never carried over.
import { open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBundleArchive } from '../../src/bundle-format/index.ts';
import { runSealift } from '../support/cli.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

let registry: TestRegistry;
let proxy: FaultProxy;
let work: Awaited<ReturnType<typeof tempDir>>;
let images: SeededImage[];

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  images = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', layers: [1 << 20, 512 << 10] },
      { ref: 'docker.io/istio/proxyv2:1.23.2', layers: [2 << 20] },
    ],
    { workDir: work.path },
  );
}, 600_000);

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

const blobGets = (from: number) =>
  proxy.requests
    .slice(from)
    .filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'))
    .map((r) => `sha256:${r.path.split('sha256:')[1]}`);

describe('bundle again under the same name', () => {
  it('copies what the earlier tar holds, fetches only the new blobs, and refetches a damaged one', async () => {
    const out = join(work.path, 'out');
    const list = join(work.path, 'stack.txt');
    const bundle = () =>
      runSealift(['bundle', '--imagelist', list, '-o', out, '--plain-http', proxy.host, '--no-site-tools', '--json'], {
        cwd: work.path,
      });
    const [pilot, proxyv2] = images as [SeededImage, SeededImage];
    await writeFile(list, `${pilot.testRef.replace(registry.host, proxy.host)}\n`);
    const first = await bundle();
    expect(first.exitCode, first.stderr).toBe(0);

    // one image added: only its blobs come from the registry
    await writeFile(list, `${[pilot, proxyv2].map((i) => i.testRef.replace(registry.host, proxy.host)).join('\n')}\n`);
    let mark = proxy.requests.length;
    const second = await bundle();
    expect(second.exitCode, second.stderr).toBe(0);
    const fetched = blobGets(mark);
    expect(fetched.length).toBeGreaterThan(0);
    for (const d of fetched) expect(Object.keys(proxyv2.blobs)).toContain(d);
    expect(fetched.filter((d) => d in pilot.blobs && !(d in proxyv2.blobs))).toEqual([]);
    const tar = join(out, 'stack.tar');
    expect((await runSealift(['bundle', 'verify', tar])).exitCode).toBe(0);

    // a flipped byte inside the earlier tar's largest layer: that layer is fetched again
    const [big] = Object.entries(pilot.blobs).sort((a, b) => b[1] - a[1])[0]!;
    const archive = await openBundleArchive(tar);
    const entry = archive.lookup(`images/blobs/sha256/${big.slice(7)}`)!;
    await archive.close();
    const fh = await open(tar, 'r+');
    await fh.write(Buffer.from([0x5a]), 0, 1, entry.offset + 100);
    await fh.close();
    mark = proxy.requests.length;
    const third = await bundle();
    expect(third.exitCode, third.stderr).toBe(0);
    expect(blobGets(mark)).toEqual([big]);
    const v = await runSealift(['bundle', 'verify', tar]);
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect((await stat(tar)).size).toBeGreaterThan(3 << 20);
  });
});
