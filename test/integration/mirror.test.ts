// `sealift mirror` registry to registry: an "upstream" seeded by skopeo, an empty site registry
// behind a recording proxy. The first run copies every image with its digest (skopeo checks);
// the second transfers nothing: no upload starts at the site, no blob is read upstream.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { makeImages, sealift, seedRegistry, skopeoDigest } from './load-fixtures.ts';

const uploads = (reqs: { method: string; path: string }[]) =>
  reqs.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.path.includes('/blobs/'));
const blobReads = (reqs: { method: string; path: string }[]) =>
  reqs.filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));

describe('sealift mirror', () => {
  it('copies an image list into an empty registry, then a second run transfers nothing', async () => {
    await using tmp = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    await using upProxy = await startFaultProxy(upstream.host);
    await using siteProxy = await startFaultProxy(site.host);
    const images = makeImages([
      'docker.io/istio/pilot:1.23.2',
      'docker.io/istio/proxyv2:1.23.2',
      'quay.io/jetstack/cert-manager-webhook:v1.16.1',
    ]);
    await seedRegistry(upstream.host, tmp.path, images);
    // the list names the upstream through the recording proxy; the last one pinned by digest
    const refs = images.map((img, i) => {
      const path = img.source.slice(img.source.indexOf('/') + 1);
      return i === 2 ? `${upProxy.host}/${path.replace(/:[^:]+$/, '')}@${img.root.digest}` : `${upProxy.host}/${path}`;
    });
    const list = join(tmp.path, 'images.txt');
    await writeFile(list, `# mirrored nightly\n${refs.join('\n')}\n`);
    const args = [
      'mirror',
      '--imagelist',
      list,
      '--to',
      siteProxy.host,
      '--plain-http',
      '--source-plain-http',
      upProxy.host,
      '--json',
    ];

    const first = await sealift(args);
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.checks.map((c: { status: string }) => c.status)).toEqual(['ok', 'ok', 'ok']);
    expect(await skopeoDigest(`${site.host}/istio/pilot:1.23.2`)).toBe(images[0]?.root.digest);
    expect(await skopeoDigest(`${site.host}/istio/proxyv2:1.23.2`)).toBe(images[1]?.root.digest);
    expect(await skopeoDigest(`${site.host}/jetstack/cert-manager-webhook@${images[2]?.root.digest}`)).toBe(
      images[2]?.root.digest,
    );
    expect(uploads(siteProxy.requests).length).toBeGreaterThan(0);

    siteProxy.requests.length = 0;
    upProxy.requests.length = 0;
    const second = await sealift(args);
    expect(second.exitCode, second.stderr).toBe(0);
    const r2 = JSON.parse(second.stdout);
    expect(r2.images.map((i: { status: string }) => i.status)).toEqual(['present', 'present', 'present']);
    expect(r2.stats.bytesPushed).toBe(0);
    expect(uploads(siteProxy.requests)).toEqual([]);
    expect(siteProxy.requests.filter((r) => r.method === 'PUT')).toEqual([]);
    expect(blobReads(upProxy.requests)).toEqual([]);
  });

  it('bug 2 (issue 8): mirror from a lock is digest-exact when the upstream tag moved', async () => {
    await using tmp = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    // the lock was written when the tag was X; then upstream pushed Y under the same tag
    const [locked] = makeImages(['docker.io/acme/app:v1']);
    const [moved] = makeImages(['docker.io/acme/app:v1']);
    await seedRegistry(upstream.host, join(tmp.path, 'x'), [locked!]);
    await seedRegistry(upstream.host, join(tmp.path, 'y'), [moved!]);
    expect(moved!.root.digest).not.toBe(locked!.root.digest);
    expect(await skopeoDigest(`${upstream.host}/acme/app:v1`)).toBe(moved!.root.digest);
    const lockFile = join(tmp.path, 'site.lock.json');
    const reference = `${upstream.host}/acme/app:v1`;
    await writeFile(
      lockFile,
      JSON.stringify({
        version: 1,
        environment: 'site',
        images: [{ reference, releases: ['app'], why: [], digest: locked!.root.digest }],
      }),
    );
    const args = ['mirror', '--imagelist', lockFile, '--to', site.host, '--plain-http'];
    const r = await sealift([...args, '--source-plain-http', upstream.host, '--json']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    // the locked image, under the tag, at the target; the moved tag reported as moved
    expect(await skopeoDigest(`${site.host}/acme/app:v1`)).toBe(locked!.root.digest);
    expect(result.checks.map((c: { status: string }) => c.status)).toEqual(['ok']);
    expect(result.movedTags).toEqual([
      { source: reference, locked: locked!.root.digest, upstream: moved!.root.digest },
    ]);
    expect(r.stderr).toContain(`the upstream tag moved to ${moved!.root.digest} since the lock`);
    expect(r.stderr + r.stdout).not.toContain('run the same command again');
  });

  it('refuses two sources that would land on one name, before the target is touched', async () => {
    await using tmp = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    await using siteProxy = await startFaultProxy(site.host);
    const port = upstream.host.split(':')[1];
    // one registry under two names: the same repository from two "hosts"
    const collide = join(tmp.path, 'collide.txt');
    await writeFile(collide, `${upstream.host}/docker/x/y:1\nlocalhost:${port}/docker/x/y:1\n`);
    const refused = await sealift([
      'mirror',
      '--imagelist',
      collide,
      '--to',
      siteProxy.host,
      '--plain-http',
      '--source-plain-http',
      upstream.host,
    ]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(
      `${upstream.host}/docker/x/y and localhost:${port}/docker/x/y would both become ${siteProxy.host}/docker/x/y`,
    );
    expect(refused.stderr).toContain('--scheme scoped');
    expect(siteProxy.requests).toEqual([]);
  });

  it("-e takes the environment's registry.scheme: a scoped environment names sources by host", async () => {
    await using tmp = await tempDir();
    await using site = await startRegistry();
    await using siteProxy = await startFaultProxy(site.host);
    const stack = join(tmp.path, 'stack');
    await mkdir(join(stack, 'environments'), { recursive: true });
    await mkdir(join(stack, 'imagelists'), { recursive: true });
    await copyFile(join(PROJECT_ROOT, 'environments', 'default.yaml'), join(stack, 'environments', 'default.yaml'));
    await writeFile(
      join(stack, 'environments', 'site.yaml'),
      `registry:\n  host: ${site.host}\n  plainHttp: true\n  scheme: scoped\n`,
    );
    // a source with a port cannot become a path component: only the scoped scheme refuses it
    const lock = {
      version: 1,
      environment: 'site',
      images: [{ reference: '127.0.0.1:5999/istio/pilot:1.23.2', releases: ['istiod'], why: [] }],
    };
    await writeFile(join(stack, 'imagelists', 'site.lock.json'), JSON.stringify(lock));
    const args = ['mirror', '-e', 'site', '--stack', stack, '--to', siteProxy.host, '--plain-http'];
    const scoped = await sealift(args);
    expect(scoped.exitCode, scoped.stderr).toBe(2);
    expect(scoped.stderr).toContain('with --scheme scoped the source host becomes a path component');
    expect(siteProxy.requests).toEqual([]);
    // --scheme still overrides the environment
    const swapped = await sealift([...args, '--scheme', 'host-swap']);
    expect(swapped.stderr).not.toContain('with --scheme scoped');
  });
});
