// The real hand-over: `sealift bundle --imagelist` on the "internet" side (an upstream seeded by
// skopeo), split into parts; the upstream is stopped; `sealift load` of the first part at the
// "site". The site serves every image with the digest the bundle's lock recorded, which is the
// digest skopeo seeded (for a multi-platform tag: the linux/amd64 manifest, bundle's default).
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { sealift, skopeoDigest } from './load-fixtures.ts';

describe('bundle, then load at the site', () => {
  it('loads a split bundle made by `sealift bundle --imagelist` with the upstream gone', async () => {
    await using tmp = await tempDir();
    const upstream = await startRegistry();
    await using site = await startRegistry();
    const seeded = await seedImages(
      upstream.host,
      [
        {
          ref: 'docker.io/istio/pilot:1.23.2',
          platforms: ['linux/amd64', 'linux/arm64'],
          base: 'distroless',
          layers: [600 << 10],
        },
        {
          ref: 'docker.io/istio/proxyv2:1.23.2',
          platforms: ['linux/amd64', 'linux/arm64'],
          base: 'distroless',
          layers: [600 << 10],
        },
        {
          ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1',
          format: 'docker',
          base: 'distroless',
          layers: [700 << 10],
        },
        { ref: 'gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.15.2', layers: [500 << 10] },
      ],
      { workDir: tmp.path },
    );
    const list = join(tmp.path, 'site-images.txt');
    // the last one pinned by digest, as Knative pins its images
    await writeFile(
      list,
      seeded.map((s, i) => (i === 3 ? `${upstream.host}/${s.repository}@${s.digest}` : s.testRef)).join('\n') + '\n',
    );
    const out = join(tmp.path, 'bundles');
    const bundled = await sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      out,
      '--plain-http',
      upstream.host,
      '--split-size',
      '1M',
      '--json',
      '--no-site-tools',
    ]);
    expect(bundled.exitCode, bundled.stdout + bundled.stderr.slice(-3000)).toBe(0);
    await upstream.stop(); // the air gap
    const parts = (await readdir(out)).filter((f) => /\.tar\.part-\d{3}$/.test(f)).sort();
    expect(parts.length).toBeGreaterThan(1);

    const siteDir = join(tmp.path, 'site');
    const first = join(out, parts[0] as string);
    const loaded = await sealift([
      'load',
      first,
      '--registry',
      site.host,
      '--plain-http',
      '--extract-to',
      siteDir,
      '--json',
    ]);
    expect(loaded.exitCode, loaded.stdout + loaded.stderr.slice(-3000)).toBe(0);
    const result = JSON.parse(loaded.stdout);
    expect(result.checks.map((c: { status: string }) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);

    // digests skopeo seeded (not computed by sealift): amd64 manifests for the multi-platform tags
    const expected = [
      seeded[0]?.platforms['linux/amd64'],
      seeded[1]?.platforms['linux/amd64'],
      seeded[2]?.digest,
      seeded[3]?.digest,
    ];
    expect(await skopeoDigest(`${site.host}/istio/pilot:1.23.2`)).toBe(expected[0]);
    expect(await skopeoDigest(`${site.host}/istio/proxyv2:1.23.2`)).toBe(expected[1]);
    expect(await skopeoDigest(`${site.host}/jetstack/cert-manager-controller:v1.16.1`)).toBe(expected[2]);
    expect(await skopeoDigest(`${site.host}/knative-releases/knative.dev/serving/cmd/queue@${expected[3]}`)).toBe(
      expected[3],
    );
    // the bundle's image lists came out with the site files
    const lists = await readdir(join(siteDir, 'imagelists'));
    expect(lists.length).toBeGreaterThan(0);
    // the images' upstream host here is the loopback upstream: its hosts.toml points at the site
    expect(await readFile(join(siteDir, `containerd/certs.d/${upstream.host}/hosts.toml`), 'utf8')).toContain(
      `[host."http://${site.host}"]`,
    );

    const again = await sealift(['load', first, '--registry', site.host, '--plain-http', '--json']);
    expect(again.exitCode, again.stderr.slice(-2000)).toBe(0);
    expect(JSON.parse(again.stdout).stats).toMatchObject({ blobsPushed: 0, blobsMounted: 0, bytesPushed: 0 });
  });
});
