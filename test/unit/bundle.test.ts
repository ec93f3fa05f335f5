// The pure parts of bundling (requests, platform rules, sizes) and the pack/verify pair on a
// small directory: what verify names when a file is changed, added or removed.
import { execa } from 'execa';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packBundle, parseSize, writeChecksums } from '../../src/bundle/pack.ts';
import { planImagePulls, readImageRequests, requestsFromLock } from '../../src/bundle/requests.ts';
import { verifyBundle } from '../../src/bundle/verify.ts';
import { registryHostsFromFlags } from '../../src/commands/flags.ts';
import { parsePlatform } from '../../src/oci/types.ts';
import { craftBundle } from '../support/bundles.ts';
import { tempDir } from '../support/process.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('image requests', () => {
  it('reads a list: normalized, deduplicated, comments skipped, errors with file:line', async () => {
    await using dir = await tempDir();
    const f = join(dir.path, 'list.txt');
    await writeFile(
      f,
      `# header\nnginx\ndocker.io/library/nginx:latest\n\n  quay.io/jetstack/cert-manager-controller:v1.16.1  # inline\nistio/pilot@${D}\n`,
    );
    const { requests } = await readImageRequests(f);
    expect(requests.map((r) => r.reference)).toEqual([
      'docker.io/library/nginx:latest',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      `docker.io/istio/pilot@${D}`,
    ]);
    expect(requests[0]?.where).toBe(`${f}:2`);
    await writeFile(f, 'nginx\nquay.io/KServe/router:v1\n');
    await expect(readImageRequests(f)).rejects.toThrow(`invalid image reference "quay.io/KServe/router:v1" (${f}:2)`);
    await writeFile(f, '# nothing\n');
    await expect(readImageRequests(f)).rejects.toThrow(/names no images/);
  });

  it('takes releases and resolved digests from a lock', () => {
    const reqs = requestsFromLock(
      {
        version: 1,
        environment: 'airgap',
        images: [
          { reference: 'docker.io/istio/pilot:1.23.2', releases: ['istiod'], why: [], digest: D },
          { reference: 'docker.io/istio/pilot:1.23.2', releases: ['istio-gateway'], why: [] },
        ],
      },
      'imagelists/airgap.lock.json',
    );
    expect(reqs).toHaveLength(1);
    expect(reqs[0]).toMatchObject({
      reference: 'docker.io/istio/pilot:1.23.2',
      releases: ['istio-gateway', 'istiod'],
      lockDigest: D,
    });
  });

  it.each([
    { ref: 'docker.io/istio/pilot:1.23.2', selector: '1.23.2', platforms: 'only' },
    { ref: `docker.io/istio/pilot@${D}`, selector: D, platforms: 'all' },
    { ref: `docker.io/istio/pilot:1.23.2@${D}`, selector: D, platforms: 'all' },
  ])('plan $ref: selector $selector, platforms $platforms', async ({ ref, selector, platforms }) => {
    await using dir = await tempDir();
    const f = join(dir.path, 'l.txt');
    await writeFile(f, `${ref}\n`);
    const [pull] = planImagePulls((await readImageRequests(f)).requests, {
      kind: 'only',
      platforms: [parsePlatform('linux/amd64')],
    });
    expect(pull?.selector).toBe(selector);
    expect(pull?.platforms.kind).toBe(platforms);
    expect(pull?.tag).toBe(ref.includes(':1.23.2') ? '1.23.2' : undefined);
  });

  it('a tag whose digest the lock resolved is fetched by that digest and still reduced', () => {
    const [pull] = planImagePulls(
      requestsFromLock(
        { version: 1, environment: 'e', images: [{ reference: 'istio/pilot:1', releases: [], why: [], digest: D }] },
        'x',
      ),
      {
        kind: 'only',
        platforms: [parsePlatform('linux/arm64')],
      },
    );
    expect(pull).toMatchObject({ selector: D, tag: '1', platforms: { kind: 'only' } });
  });
});

describe('flags', () => {
  it.each([
    { s: '4G', n: 4 * 1024 ** 3 },
    { s: '700M', n: 700 * 1024 ** 2 },
    { s: '1.5GiB', n: 1.5 * 1024 ** 3 },
    { s: '1048576', n: 1048576 },
  ])('size $s', ({ s, n }) => expect(parseSize(s)).toBe(n));
  it.each(['', '4X', '10K', '-1G'])('rejects size "%s"', (s) => expect(() => parseSize(s)).toThrow());

  it('registry settings per host, mirrors included', () => {
    expect(
      registryHostsFromFlags({
        plainHttp: ['127.0.0.1:5000'],
        insecure: [],
        caFile: ['quay.io=/etc/ca.pem'],
        mirror: ['docker.io=127.0.0.1:5000/hub'],
        mirrorFallback: false,
      }),
    ).toEqual({
      '127.0.0.1:5000': { plainHttp: true },
      'quay.io': { caFile: '/etc/ca.pem' },
      'docker.io': { mirrors: ['127.0.0.1:5000/hub'] },
    });
    expect(() =>
      registryHostsFromFlags({ plainHttp: [], insecure: [], caFile: [], mirror: ['docker.io=http://x'] }),
    ).toThrow(/without a scheme/);
  });

  it("registry flags name themselves in errors, with mirror's source- prefix", () => {
    expect(() => registryHostsFromFlags({ caFile: ['quay.io'] })).toThrow('--ca-file takes HOST=FILE, not "quay.io"');
    expect(() => registryHostsFromFlags({ caFile: ['=/ca.pem'] }, 'source-')).toThrow(
      '--source-ca-file takes HOST=FILE, not "=/ca.pem"',
    );
    expect(() => registryHostsFromFlags({ mirror: ['docker.io='] })).toThrow('--mirror takes HOST=ENDPOINT');
    expect(
      registryHostsFromFlags(
        { plainHttp: ['a:5000'], insecure: ['b'], caFile: ['b=/ca.pem', 'a:5000=/x.pem'] },
        'source-',
      ),
    ).toEqual({ 'a:5000': { plainHttp: true, caFile: '/x.pem' }, b: { insecureSkipVerify: true, caFile: '/ca.pem' } });
  });
});

describe('pack and verify', () => {
  async function smallBundle(root: string): Promise<string> {
    const crafted = await craftBundle(root);
    await mkdir(join(root, 'charts'));
    await writeFile(join(root, 'charts', 'kserve-v0.15.2.tgz'), 'chart bytes');
    await writeChecksums(root);
    return crafted.images[0]!.layers[0]!.digest.slice('sha256:'.length);
  }

  it('packs bundle.json and checksums first; verify names a changed, an added and a missing file', async () => {
    await using dir = await tempDir();
    const root = join(dir.path, 'b.work');
    const hex = await smallBundle(root);
    const packed = await packBundle({ root, output: join(dir.path, 'b.tar') });
    const listing = (await execa('tar', ['-tf', join(dir.path, 'b.tar')])).stdout.split('\n');
    expect(listing.slice(0, 2)).toEqual(['checksums.sha256', 'bundle.json']);
    expect(await readFile(packed.checksumFile, 'utf8')).toBe(`${packed.files[0]?.sha256}  b.tar\n`);
    await expect(verifyBundle(join(dir.path, 'b.tar'))).resolves.toMatchObject({ images: 2, parts: 1 });
    await expect(verifyBundle(root)).resolves.toMatchObject({ parts: 0 });

    await writeFile(join(root, 'charts', 'kserve-v0.15.2.tgz'), 'other chart');
    await writeFile(join(root, 'charts', 'extra.tgz'), 'x');
    await rm(join(root, 'images', 'oci-layout'));
    const err = (await verifyBundle(root).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('charts/kserve-v0.15.2.tgz: sha256 is');
    expect(err.message).toContain('charts/extra.tgz: in the bundle but not listed in checksums.sha256');
    expect(err.message).toContain('images/oci-layout: listed in checksums.sha256 but not in the bundle');
    await writeFile(join(root, 'images', 'blobs', 'sha256', hex), 'LAYER');
    await expect(verifyBundle(root)).rejects.toThrow(`images/blobs/sha256/${hex}: sha256 is `);
  });

  it('gzip and parts verify; a missing part is named', async () => {
    await using dir = await tempDir();
    const root = join(dir.path, 'g.work');
    await smallBundle(root);
    await writeFile(join(root, 'charts', 'big.tgz'), Buffer.alloc(3 * 1024 * 1024, 7));
    await writeChecksums(root);
    const gz = await packBundle({ root, output: join(dir.path, 'g.tar'), gzip: true });
    expect(gz.files[0]?.path).toBe(join(dir.path, 'g.tar.gz'));
    await expect(verifyBundle(join(dir.path, 'g.tar.gz'))).resolves.toMatchObject({ parts: 1 });
    const split = await packBundle({ root, output: join(dir.path, 's.tar'), splitSize: 1024 * 1024 });
    expect(split.files.map((f) => f.path.split('/').pop())).toEqual([
      's.tar.part-000',
      's.tar.part-001',
      's.tar.part-002',
      's.tar.part-003',
    ]);
    await expect(verifyBundle(join(dir.path, 's.tar.part-000'))).resolves.toMatchObject({ parts: 4 });
    await rm(join(dir.path, 's.tar.part-003'));
    await expect(verifyBundle(join(dir.path, 's.tar.part-000'))).rejects.toThrow(
      /s\.tar\.part-003: listed in s\.tar\.sha256 but not found/,
    );
  });
});
