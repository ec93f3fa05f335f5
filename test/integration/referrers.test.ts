// Image signatures, attestations and SBOMs across the gap, with the real cosign on both sides:
// signed upstream in cosign's tag-based mode and in OCI 1.1 referrers mode (on docker-registry
// 2.8.2, which has no referrers API, cosign writes the sha256-<hex> fallback index; the ggcr
// registry has the API), bundled, every source stopped, loaded into docker-registry 2.8.2 (what
// the sites run), then checked by cosign verify and cosign tree by the site names and by
// `sealift verify --signatures`, which must name an image whose signature was deleted.
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSealift } from '../support/cli.ts';
import { cosign, EMPTY_TRUSTED_ROOT } from '../support/cosign-offline.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { startOci11Registry, type Oci11Registry } from '../support/oci11-registry.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

let work: Awaited<ReturnType<typeof tempDir>>;
let upstream: TestRegistry;
let withApi: Oci11Registry;
let site: TestRegistry;
let pilot: SeededImage; // an index, tag-based cosign objects (signed recursively), upstream 2.8.2
let certManager: SeededImage; // OCI 1.1 referrers on 2.8.2: cosign wrote the fallback index
let kserve: SeededImage; // OCI 1.1 referrers in a registry with the API
let bundleIndex: { images: { reference: string; referrers?: { kind: string; tag?: string; subject: string }[] }[] };
let lockFile: string;

const sealift = (args: string[]) => runSealift(args, { cwd: work.path });

async function cosignOk(args: string[]): Promise<string> {
  const r = await cosign(work.path, args);
  expect(r.exitCode, `cosign ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return `${r.stdout}\n${r.stderr}`;
}

const siteName = (img: SeededImage) => `${site.host}/${img.repository}:${img.tag}`;
const insecure = '--allow-insecure-registry';

async function manifestDigest(host: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
  });
  return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

async function fallbackIndex(host: string, repo: string, digest: string) {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${digest.replace(':', '-')}`, {
    headers: { accept: 'application/vnd.oci.image.index.v1+json' },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { manifests: { digest: string; artifactType?: string }[] };
}

async function verifySignatures(key: string) {
  const r = await sealift([
    'verify',
    '--signatures',
    '--key',
    key,
    '--lock',
    lockFile,
    '--registry',
    site.host,
    '--plain-http',
    '--json',
  ]);
  return { exitCode: r.exitCode, stderr: r.stderr, result: JSON.parse(r.stdout || '{}') as VerifyResult };
}

interface VerifyResult {
  ok: boolean;
  images: { reference: string; target: string; status: string; message?: string }[];
}

beforeAll(async () => {
  work = await tempDir();
  upstream = await startRegistry();
  withApi = await startOci11Registry();
  site = await startRegistry();
  [pilot, certManager] = (await seedImages(
    upstream.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', platforms: ['linux/amd64', 'linux/arm64'] },
      { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1' },
    ],
    { workDir: work.path },
  )) as [SeededImage, SeededImage];
  [kserve] = (await seedImages(withApi.host, [{ ref: 'ghcr.io/kserve/kserve-controller:v0.15.2' }], {
    workDir: work.path,
  })) as [SeededImage];
  await cosignOk(['generate-key-pair']);
  await writeFile(join(work.path, 'sbom.spdx.json'), '{"spdxVersion":"SPDX-2.3","name":"test"}\n');
  await writeFile(join(work.path, 'predicate.json'), '{"reviewed":"yes"}\n');
  await writeFile(join(work.path, 'trusted-root.json'), EMPTY_TRUSTED_ROOT);
  const sign = ['sign', '--key', 'cosign.key', '--tlog-upload=false', insecure, '-y'];
  const attest = [
    'attest',
    '--key',
    'cosign.key',
    '--tlog-upload=false',
    insecure,
    '-y',
    '--predicate',
    'predicate.json',
    '--type',
    'custom',
  ];
  const sbom = ['attach', 'sbom', '--sbom', 'sbom.spdx.json', '--type', 'spdx', insecure];
  const oci11 = '--registry-referrers-mode=oci-1-1';
  // tag-based: the index and each child signed; the amd64 child (what the bundle keeps) gets an SBOM and an attestation
  const pilotAmd64 = `${upstream.host}/${pilot.repository}@${pilot.platforms['linux/amd64']}`;
  await cosignOk([...sign, '--recursive', `${upstream.host}/${pilot.repository}@${pilot.digest}`]);
  await cosignOk([...sbom, pilotAmd64]);
  await cosignOk([...attest, pilotAmd64]);
  // OCI 1.1 on a registry without the API
  const cm = `${upstream.host}/${certManager.repository}@${certManager.digest}`;
  await cosignOk([...sign, oci11, cm]);
  await cosignOk([...sbom, oci11, cm]);
  // OCI 1.1 on a registry with the API; the attestation as a Sigstore bundle referrer
  const ks = `${withApi.host}/${kserve.repository}@${kserve.digest}`;
  await cosignOk([...sign, oci11, ks]);
  await cosignOk([...sbom, oci11, ks]);
  await cosignOk([...attest, '--new-bundle-format', ks]);

  await writeFile(join(work.path, 'images.txt'), `${pilot.ref}\n${certManager.ref}\n${kserve.ref}\n`);
  const bundle = await sealift([
    'bundle',
    '--imagelist',
    'images.txt',
    '-o',
    'out',
    '--no-site-tools',
    '--plain-http',
    upstream.host,
    '--plain-http',
    withApi.host,
    '--mirror',
    `docker.io=${upstream.host}`,
    '--mirror',
    `quay.io=${upstream.host}`,
    '--mirror',
    `ghcr.io=${withApi.host}`,
  ]);
  expect(bundle.exitCode, bundle.stderr).toBe(0);
  // offline from here: the sources are gone
  await upstream.stop();
  await withApi.stop();
  await execa('tar', ['-xf', 'out/images.tar', 'bundle.json', 'imagelists/images.lock.json'], { cwd: work.path });
  bundleIndex = JSON.parse(await readFile(join(work.path, 'bundle.json'), 'utf8'));
  lockFile = join(work.path, 'imagelists', 'images.lock.json');
  const load = await sealift(['load', 'out/images.tar', '--registry', site.host, '--plain-http', '--json']);
  expect(load.exitCode, load.stderr).toBe(0);
  const loaded = JSON.parse(load.stdout);
  expect(loaded.ok).toBe(true);
  // pilot's 3 tag objects; cert-manager's and kserve's referrers into fallback indexes (2.8.2 has no API)
  expect(loaded.referrers).toMatchObject({ objects: 8, viaTag: 3, viaApi: 0, viaFallbackTag: 5, failures: [] });
});

afterAll(async () => {
  await upstream?.stop();
  await withApi?.stop();
  await site?.stop();
  await work?.[Symbol.asyncDispose]();
});

describe('image signatures, attestations and SBOMs', () => {
  it('are listed per image in bundle.json, for the manifests the bundle keeps', () => {
    const byRef = new Map(bundleIndex.images.map((i) => [i.reference, i.referrers ?? []]));
    const amd64 = pilot.platforms['linux/amd64']!.replace(':', '-');
    // the bundle keeps linux/amd64 of pilot's index: the index's own signature has no subject at the site
    expect(
      byRef
        .get(pilot.ref)!
        .map((r) => r.tag)
        .sort(),
    ).toEqual([`${amd64}.att`, `${amd64}.sbom`, `${amd64}.sig`]);
    expect(byRef.get(certManager.ref)!.map((r) => r.kind)).toEqual(['subject', 'subject']);
    expect(byRef.get(kserve.ref)!.map((r) => r.kind)).toEqual(['subject', 'subject', 'subject']);
    for (const r of [...byRef.get(certManager.ref)!, ...byRef.get(kserve.ref)!]) expect(r.subject).toMatch(/^sha256:/);
  });

  it('verify with the real cosign by the site names, and cosign tree shows the attachments', async () => {
    const byKey = ['--key', 'cosign.pub', '--insecure-ignore-tlog=true', insecure];
    // kserve also has a Sigstore-bundle attestation, which cosign reads with a trusted root (an empty one: --key decides)
    const bundleFlags = ['--new-bundle-format', '--trusted-root', 'trusted-root.json'];
    await cosignOk(['verify', ...byKey, siteName(pilot)]);
    await cosignOk(['verify-attestation', ...byKey, '--type', 'custom', siteName(pilot)]);
    await cosignOk(['verify', ...byKey, '--experimental-oci11', siteName(certManager)]);
    await cosignOk(['verify', ...byKey, '--experimental-oci11', ...bundleFlags, siteName(kserve)]);
    await cosignOk(['verify-attestation', ...byKey, '--type', 'custom', ...bundleFlags, siteName(kserve)]);

    const pilotTree = await cosignOk(['tree', insecure, siteName(pilot)]);
    expect(pilotTree).toContain('Signatures for an image tag');
    expect(pilotTree).toContain('Attestations for an image tag');
    expect(pilotTree).toContain('SBOMs for an image tag');
    const cmTree = await cosignOk(['tree', insecure, '--experimental-oci11', siteName(certManager)]);
    expect(cmTree).toMatch(/application\/vnd\.dev\.cosign\.artifact\.sig\.v1\+json artifacts via OCI referrer/);
    expect(cmTree).toMatch(/application\/vnd\.dev\.cosign\.artifact\.sbom\.v1\+json artifacts via OCI referrer/);
    const ksTree = await cosignOk(['tree', insecure, '--experimental-oci11', siteName(kserve)]);
    expect(ksTree).toMatch(/application\/vnd\.dev\.sigstore\.bundle\.v0\.3\+json artifacts via OCI referrer/);
  });

  it('sealift verify --signatures passes with the signing key and names every image with another key', async () => {
    const good = await verifySignatures('cosign.pub');
    expect(good.exitCode, good.stderr).toBe(0);
    expect(good.result.images.map((i) => i.status)).toEqual(['signed', 'signed', 'signed']);

    await execa('mkdir', ['-p', 'other'], { cwd: work.path });
    expect((await cosign(join(work.path, 'other'), ['generate-key-pair'])).exitCode).toBe(0);
    const other = await verifySignatures('other/cosign.pub');
    expect(other.exitCode).toBe(8);
    expect(other.result.images.map((i) => i.status)).toEqual(['invalid', 'invalid', 'invalid']);
  });

  it('a second load keeps what the site added to a fallback index and duplicates nothing', async () => {
    // the site attaches its own SBOM the OCI 1.1 way: cosign adds it to the fallback index
    const cm = `${site.host}/${certManager.repository}@${certManager.digest}`;
    await cosignOk([
      'attach',
      'sbom',
      '--sbom',
      'sbom.spdx.json',
      '--type',
      'cyclonedx',
      insecure,
      '--registry-referrers-mode=oci-1-1',
      cm,
    ]);
    const before = await fallbackIndex(site.host, certManager.repository, certManager.digest);
    expect(before.manifests).toHaveLength(3);
    const again = await sealift(['load', 'out/images.tar', '--registry', site.host, '--plain-http', '--json']);
    expect(again.exitCode, again.stderr).toBe(0);
    const after = await fallbackIndex(site.host, certManager.repository, certManager.digest);
    expect(after.manifests.map((m) => m.digest).sort()).toEqual(before.manifests.map((m) => m.digest).sort());
  });

  it('fails naming the image whose signature was deleted at the site', async () => {
    // tag-based: DELETE the .sig manifest of pilot's amd64 child
    const sigTag = `${pilot.platforms['linux/amd64']!.replace(':', '-')}.sig`;
    const sig = await manifestDigest(site.host, pilot.repository, sigTag);
    expect(sig).toBeDefined();
    const del = await fetch(`http://${site.host}/v2/${pilot.repository}/manifests/${sig}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const one = await verifySignatures('cosign.pub');
    expect(one.exitCode).toBe(8);
    expect(one.result.ok).toBe(false);
    expect(one.result.images.filter((i) => i.status !== 'signed').map((i) => i.reference)).toEqual([pilot.ref]);
    expect(one.result.images[0]).toMatchObject({ status: 'unsigned', target: siteName(pilot) });
    const text = await sealift([
      'verify',
      '--signatures',
      '--key',
      'cosign.pub',
      '--lock',
      lockFile,
      '--registry',
      site.host,
      '--plain-http',
    ]);
    expect(text.stdout).toContain(`unsigned: ${siteName(pilot)} (${pilot.ref})`);

    // an OCI 1.1 referrer: DELETE the signature manifest the fallback index lists
    const listed = await fallbackIndex(site.host, certManager.repository, certManager.digest);
    const cmSig = listed.manifests.find((m) => m.artifactType === 'application/vnd.dev.cosign.artifact.sig.v1+json');
    expect(cmSig).toBeDefined();
    expect(
      (await fetch(`http://${site.host}/v2/${certManager.repository}/manifests/${cmSig!.digest}`, { method: 'DELETE' }))
        .status,
    ).toBe(202);
    const two = await verifySignatures('cosign.pub');
    expect(two.exitCode).toBe(8);
    expect(two.result.images.filter((i) => i.status !== 'signed').map((i) => i.reference)).toEqual([
      pilot.ref,
      certManager.ref,
    ]);
  });

  it('mirror leaves out, with a warning, a referrer the fallback index still lists but that was deleted', async () => {
    // the previous test deleted cert-manager's signature at the site; its fallback index still lists it
    await using next = await startRegistry();
    await writeFile(join(work.path, 'site-images.txt'), `${siteName(certManager)}\n`);
    const r = await sealift([
      'mirror',
      '--imagelist',
      'site-images.txt',
      '--to',
      next.host,
      '--plain-http',
      '--plain-http',
      site.host,
      '--json',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/the referrers of sha256:[a-f0-9]{64} list sha256:[a-f0-9]{64}, which is gone; left out/);
    // what is there (the two SBOMs) was copied
    expect(JSON.parse(r.stdout).referrers).toMatchObject({ objects: 2, failures: [] });
  });

  it('load --no-referrers pushes the images and none of what refers to them', async () => {
    await using bare = await startRegistry();
    const r = await sealift([
      'load',
      'out/images.tar',
      '--registry',
      bare.host,
      '--plain-http',
      '--no-referrers',
      '--json',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).referrers).toBeUndefined();
    const amd64 = pilot.platforms['linux/amd64']!.replace(':', '-');
    expect(await manifestDigest(bare.host, pilot.repository, `${amd64}.sig`)).toBeUndefined();
    expect(
      await manifestDigest(bare.host, certManager.repository, certManager.digest.replace(':', '-')),
    ).toBeUndefined();
  });
});

describe('verify --signatures usage', () => {
  it.each([
    [['--signatures', '--lock', 'x.json', '--registry', '127.0.0.1:5000'], '--signatures and --key go together'],
    [['--key', 'cosign.pub', '--lock', 'x.json', '--registry', '127.0.0.1:5000'], '--signatures and --key go together'],
    [
      ['--signatures', '--key', 'cosign.pub', '--registry', '127.0.0.1:5000'],
      'needs the images to check: -e <env> or --lock FILE',
    ],
    [['--signatures', '--key', 'cosign.pub', '--lock', 'x.json'], 'needs the registry: --registry HOST:PORT'],
  ])('verify %j is a usage error, before any request', async (args, message) => {
    const r = await sealift(['verify', ...args]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('signatures of some platforms, and registry to registry', () => {
  it('an index reduced to two of three platforms keeps the signatures of those two, and passes by them', async () => {
    await using up = await startRegistry();
    await using at = await startRegistry();
    const dir = join(work.path, 'reduced');
    await execa('mkdir', ['-p', dir]);
    const [queue] = (await seedImages(
      up.host,
      [{ ref: 'docker.io/knative/queue:v1.16.0', platforms: ['linux/amd64', 'linux/arm64', 'linux/s390x'] }],
      { workDir: dir },
    )) as [SeededImage];
    const sign = ['sign', '--key', 'cosign.key', '--tlog-upload=false', insecure, '-y'];
    await cosignOk([...sign, '--recursive', `${up.host}/${queue.repository}@${queue.digest}`]);
    // and an OCI 1.1 signature of the arm64 child: a referrer in the fallback index of that child
    const arm64 = queue.platforms['linux/arm64']!;
    await cosignOk([...sign, '--registry-referrers-mode=oci-1-1', `${up.host}/${queue.repository}@${arm64}`]);
    await writeFile(join(dir, 'images.txt'), `${queue.ref}\n`);
    const bundle = await runSealift(
      [
        'bundle',
        '--imagelist',
        'images.txt',
        '-o',
        'out',
        '--no-site-tools',
        '--platform',
        'linux/amd64',
        '--platform',
        'linux/arm64',
        '--plain-http',
        up.host,
        '--mirror',
        `docker.io=${up.host}`,
      ],
      { cwd: dir },
    );
    expect(bundle.exitCode, bundle.stderr).toBe(0);
    await execa('tar', ['-xf', 'out/images.tar', 'bundle.json', 'imagelists/images.lock.json'], { cwd: dir });
    const index = JSON.parse(await readFile(join(dir, 'bundle.json'), 'utf8')) as typeof bundleIndex;
    const entry = index.images[0]!;
    const kept = [queue.platforms['linux/amd64']!, arm64].sort();
    expect([...new Set(entry.referrers!.map((r) => r.subject))].sort()).toEqual(kept);
    expect(entry.referrers!.map((r) => r.kind).sort()).toEqual(['subject', 'tag', 'tag']);
    const load = await runSealift(['load', 'out/images.tar', '--registry', at.host, '--plain-http', '--json'], {
      cwd: dir,
    });
    expect(load.exitCode, load.stderr).toBe(0);
    const verify = await runSealift(
      [
        'verify',
        '--signatures',
        '--key',
        join(work.path, 'cosign.pub'),
        '--lock',
        'imagelists/images.lock.json',
        '--registry',
        at.host,
        '--plain-http',
        '--json',
      ],
      { cwd: dir },
    );
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout).images[0]).toMatchObject({ status: 'signed', via: 'children' });
  });

  it('mirror copies tag-based and OCI 1.1 signatures, which cosign verifies at the target', async () => {
    await using up = await startRegistry();
    await using to = await startRegistry();
    const dir = join(work.path, 'mirror');
    await execa('mkdir', ['-p', dir]);
    const [a, b] = (await seedImages(up.host, [{ ref: 'docker.io/app/a:v1' }, { ref: 'docker.io/app/b:v1' }], {
      workDir: dir,
    })) as [SeededImage, SeededImage];
    const sign = ['sign', '--key', 'cosign.key', '--tlog-upload=false', insecure, '-y'];
    await cosignOk([...sign, `${up.host}/${a.repository}@${a.digest}`]);
    await cosignOk([...sign, '--registry-referrers-mode=oci-1-1', `${up.host}/${b.repository}@${b.digest}`]);
    await writeFile(join(dir, 'images.txt'), `${up.host}/${a.repository}:v1\n${up.host}/${b.repository}:v1\n`);
    const mirror = await runSealift(
      ['mirror', '--imagelist', 'images.txt', '--to', to.host, '--plain-http', '--plain-http', up.host, '--json'],
      { cwd: dir },
    );
    expect(mirror.exitCode, mirror.stderr).toBe(0);
    expect(JSON.parse(mirror.stdout).referrers).toMatchObject({ objects: 2, viaTag: 1, viaFallbackTag: 1 });
    await up.stop();
    const byKey = ['--key', 'cosign.pub', '--insecure-ignore-tlog=true', insecure];
    await cosignOk(['verify', ...byKey, `${to.host}/${a.repository}:v1`]);
    await cosignOk(['verify', ...byKey, '--experimental-oci11', `${to.host}/${b.repository}:v1`]);
  });
});
