// `sealift load` against a real registry (Debian's docker-registry) on loopback, checked with
// skopeo (an independent client): every image at the site has the source's digest, a second
// load transfers nothing, tampered bundles are refused before the registry sees a request.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startRegistry, storedRepositories } from '../support/registry.ts';
import { tempDir } from '../support/process.ts';
import {
  CLI,
  CLI_ENV,
  craftEntry,
  makeImages,
  sealift,
  skopeoDigest,
  withoutEndMarker,
  writeBundle,
} from './load-fixtures.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';

const NAMES = [
  'docker.io/istio/pilot:1.23.2',
  'quay.io/jetstack/cert-manager-controller:v1.16.1',
  'ghcr.io/kserve/kserve-controller:v0.15.2',
  'docker.io/istio/proxyv2:1.23.2',
];

describe('sealift load', () => {
  it('pushes every image with the source digest, and a second load transfers no blob', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES);
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);

    const first = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--json']);
    expect(
      first.stderr
        .split('\n')
        .filter((l) => l.includes('"error"'))
        .join('\n'),
    ).toBe('');
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.ok).toBe(true);
    expect(r1.checks.map((c: { status: string }) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);

    for (const img of images) {
      const target = `${reg.host}/${img.source.slice(img.source.indexOf('/') + 1)}`;
      expect(await skopeoDigest(target), target).toBe(img.root.digest);
    }
    expect(await storedRepositories(reg.dataDir)).toEqual([
      'istio/pilot',
      'istio/proxyv2',
      'jetstack/cert-manager-controller',
      'kserve/kserve-controller',
    ]);
    // the shared base layer was uploaded once and mounted into the other repositories
    const uniqueBlobs = new Set(
      images.flatMap((i) => i.blobs.filter((b) => !b.mediaType.includes('manifest')).map((b) => b.digest)),
    );
    expect(r1.stats.blobsPushed).toBe(uniqueBlobs.size);
    expect(r1.stats.blobsMounted).toBe(images.length - 1);

    const second = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--json']);
    expect(second.exitCode, second.stderr).toBe(0);
    const r2 = JSON.parse(second.stdout);
    expect(r2.stats).toEqual({ blobsPushed: 0, blobsMounted: 0, blobsPresent: expect.any(Number), bytesPushed: 0 });
    expect(r2.images.map((i: { status: string }) => i.status)).toEqual(['present', 'present', 'present', 'present']);
  });

  it('refuses a bundle with a modified blob, naming it, and leaves the registry untouched', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    // flip one byte inside a layer, in place, as a bad disk or an attacker would
    const layer = images[1]?.blobs[2];
    if (!layer) throw new Error('fixture has no layer');
    const bytes = await readFile(bundle);
    const at = bytes.indexOf(layer.bytes.subarray(0, 64));
    expect(at).toBeGreaterThan(0);
    bytes[at + 10] = (bytes[at + 10] ?? 0) ^ 0xff;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(bundle, bytes);

    const r = await sealift(['load', bundle, '--registry', reg.host, '--plain-http']);
    expect(r.exitCode).toBe(10);
    expect(r.stderr).toContain(`images/blobs/sha256/${layer.digest.slice(7)}: sha256 is`);
    expect(r.stderr).toContain('nothing is loaded from such a bundle');
    expect(await storedRepositories(reg.dataDir)).toEqual([]);
  });

  const attacks: [string, (tar: Buffer, imgs: ReturnType<typeof makeImages>) => Buffer, RegExp][] = [
    [
      'path traversal',
      (t) =>
        Buffer.concat([
          withoutEndMarker(t),
          craftEntry({ path: '../../../etc/cron.d/evil', body: '* * * * * root sh\n' }),
          Buffer.alloc(1024),
        ]),
      /"\.\.\/\.\.\/\.\.\/etc\/cron\.d\/evil" has "\.\." in its path/,
    ],
    [
      'symlink escape',
      (t) =>
        Buffer.concat([
          withoutEndMarker(t),
          craftEntry({ path: 'charts/evil.tgz', type: 'SymbolicLink', linkpath: '../../../../root/.ssh/id_rsa' }),
          Buffer.alloc(1024),
        ]),
      /"charts\/evil\.tgz" is a symlink \(-> "\.\.\/\.\.\/\.\.\/\.\.\/root\/\.ssh\/id_rsa"\); a bundle holds no links/,
    ],
    [
      'device file',
      (t) =>
        Buffer.concat([
          withoutEndMarker(t),
          craftEntry({ path: 'dev-null', type: 'CharacterDevice' }),
          Buffer.alloc(1024),
        ]),
      /"dev-null" is a device file/,
    ],
    ['truncated tar', (t) => t.subarray(0, Math.floor(t.length / 2)), /the archive is truncated/],
    [
      'unlisted extra file',
      (t) =>
        Buffer.concat([
          withoutEndMarker(t),
          craftEntry({ path: 'values/airgap/extra.yaml', body: 'image: evil.example/x\n' }),
          Buffer.alloc(1024),
        ]),
      /values\/airgap\/extra\.yaml: in the bundle but not listed in checksums\.sha256/,
    ],
  ];

  it.each(attacks)('refuses a bundle with a %s without touching the registry', async (_name, mutate, message) => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(bundle, mutate(await readFile(bundle), images));
    const r = await sealift([
      'load',
      bundle,
      '--registry',
      proxy.host,
      '--plain-http',
      '--extract-to',
      join(tmp.path, 'site'),
    ]);
    expect(r.exitCode, r.stderr).toBe(10);
    expect(r.stderr).toMatch(message);
    expect(proxy.requests).toEqual([]);
    expect(await readdir(join(tmp.path, 'site')).catch(() => 'absent')).toBe('absent');
  });

  it('refuses a self-consistent bundle whose bundle.json sizes disagree with its blobs', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(
      join(tmp.path, 'stage'),
      join(tmp.path, 'b.tar'),
      images,
      {},
      {
        editIndex: (idx) => {
          const first = idx.images[0];
          if (first) first.size += 1000;
        },
      },
    );
    const r = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http']);
    expect(r.exitCode, r.stderr).toBe(10);
    expect(r.stderr).toContain(
      `docker.io/istio/pilot:1.23.2: ${images[0]?.root.digest} is ${images[0]?.root.size} bytes, bundle.json says ${(images[0]?.root.size ?? 0) + 1000}`,
    );
    expect(proxy.requests).toEqual([]);
  });

  it('loads an extracted bundle directory the same way', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const dir = join(tmp.path, 'extracted');
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(join(dir, '.ingest'), { recursive: true });
    await writeFile(join(dir, '.ingest', 'partial'), 'a killed bundle run left this');
    await execa('tar', ['-xf', bundle, '-C', dir]);
    const r = await sealift(['load', dir, '--registry', reg.host, '--plain-http', '--json']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    for (const img of images)
      expect(await skopeoDigest(`${reg.host}/${img.source.slice(img.source.indexOf('/') + 1)}`)).toBe(img.root.digest);
  });

  it('hashes a bundle once, and again when the file changed after the check', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const first = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--json']);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).verified.cached).toBe(false);
    const again = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--json']);
    expect(JSON.parse(again.stdout).verified.cached).toBe(true);
    expect(again.stderr).toContain('unchanged since it matched checksums.sha256');
    // the same file, altered in place after it was checked: hashed again, and refused
    const layer = images[0]?.blobs[2];
    if (!layer) throw new Error('fixture has no layer');
    const bytes = await readFile(bundle);
    const at = bytes.indexOf(layer.bytes.subarray(0, 64));
    bytes[at + 5] = (bytes[at + 5] ?? 0) ^ 0x01;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(bundle, bytes);
    const tampered = await sealift(['load', bundle, '--registry', reg.host, '--plain-http']);
    expect(tampered.exitCode).toBe(10);
    expect(tampered.stderr).toContain(`images/blobs/sha256/${layer.digest.slice(7)}: sha256 is`);
  });

  it('logs in to a site registry with the credentials docker login stored, and names it when they are wrong', async () => {
    await using tmp = await tempDir();
    // bcrypt of "s3cret" for user alice (htpasswd -nbB alice s3cret)
    await using reg = await startRegistry({
      htpasswd: 'alice:$2y$05$vb6o4iClNIzKH75aBLwlD.RI1mOHlxYzNvpqmF5joKBP.z5JyFvVq\n',
    });
    const images = makeImages(NAMES.slice(0, 2));
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const { mkdir, writeFile } = await import('node:fs/promises');
    const docker = (user: string, pass: string) =>
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } });
    await mkdir(join(tmp.path, 'good'));
    await mkdir(join(tmp.path, 'bad'));
    await writeFile(join(tmp.path, 'good', 'config.json'), docker('alice', 's3cret'));
    await writeFile(join(tmp.path, 'bad', 'config.json'), docker('alice', 'wrong'));

    const bad = await execa('node', [CLI, 'load', bundle, '--registry', reg.host, '--plain-http'], {
      reject: false,
      env: { ...CLI_ENV, DOCKER_CONFIG: join(tmp.path, 'bad') },
    });
    expect(bad.exitCode).toBe(9);
    expect(bad.stderr).toContain(`registry ${reg.host} refused the credentials of user "alice"`);
    expect(bad.stderr + bad.stdout).not.toContain('s3cret');
    expect(bad.stderr + bad.stdout).not.toContain('wrong');

    const good = await execa('node', [CLI, 'load', bundle, '--registry', reg.host, '--plain-http', '--json'], {
      reject: false,
      env: { ...CLI_ENV, DOCKER_CONFIG: join(tmp.path, 'good') },
    });
    expect(good.exitCode, good.stderr.slice(-2000)).toBe(0);
    expect(JSON.parse(good.stdout).checks.map((c: { status: string }) => c.status)).toEqual(['ok', 'ok']);
    expect(good.stderr + good.stdout).not.toContain('s3cret');
  });
});
