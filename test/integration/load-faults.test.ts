// Loading through trouble: a proxy in front of the site registry resets uploads and answers
// 500 and 429; a load is SIGKILLed in the middle. Every time the end state is the same: each
// image at the site with its source digest (checked with skopeo), and a re-run finishes the job
// without uploading again what was already committed.
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, uploadSessionBytes } from '../support/registry.ts';
import { CLI, CLI_ENV, makeImages, sealift, skopeoDigest, writeBundle } from './load-fixtures.ts';

const NAMES = [
  'docker.io/istio/pilot:1.23.2',
  'docker.io/istio/proxyv2:1.23.2',
  'quay.io/jetstack/cert-manager-controller:v1.16.1',
  'ghcr.io/kserve/kserve-controller:v0.15.2',
];

const siteName = (source: string, host: string) => `${host}/${source.slice(source.indexOf('/') + 1)}`;
const commits = (reqs: { method: string; path: string; status?: number }[]) =>
  reqs.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/') && r.status === 201);

describe('load under faults', () => {
  it('survives resets, 500s and 429s while pushing', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const images = makeImages(NAMES, { layerBytes: 256 * 1024 });
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    // the request that carries a blob's bytes (one PUT: open, then a monolithic upload)
    proxy.inject({ fault: 'reset', match: /^PUT \/v2\/.*\/blobs\/uploads\//, times: 3 });
    proxy.inject({ fault: '500', match: /^POST \/v2\/.*\/blobs\/uploads\//, times: 2 });
    proxy.inject({ fault: '429', match: /^HEAD \/v2\/.*\/blobs\//, times: 2, retryAfter: 0 });
    proxy.inject({ fault: '500', match: /^PUT \/v2\/.*\/manifests\//, times: 1 });

    const r = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http', '--json']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(proxy.pending()).toBe(0);
    expect(r.stderr).toContain('"type":"retry"');
    for (const img of images) expect(await skopeoDigest(siteName(img.source, reg.host))).toBe(img.root.digest);
  });

  it('finishes after a SIGKILL in the middle, without uploading committed blobs again', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const images = makeImages(NAMES, { layerBytes: 3 * 1024 * 1024 });
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const uniqueBlobs = new Set(
      images.flatMap((i) => i.blobs.filter((b) => !b.mediaType.includes('manifest')).map((b) => b.digest)),
    );

    const child = execa('node', [CLI, 'load', bundle, '--registry', proxy.host, '--plain-http', '--concurrency', '1'], {
      reject: false,
      env: CLI_ENV,
    });
    let exited = false;
    void child.finally(() => (exited = true));
    const deadline = Date.now() + 60_000;
    while (commits(proxy.requests).length < 2 && Date.now() < deadline && !exited)
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    const killed = await child;
    expect(killed.signal, `the load finished before it could be killed:\n${killed.stdout}`).toBe('SIGKILL');
    const committedBefore = commits(proxy.requests).length;
    expect(committedBefore).toBeGreaterThanOrEqual(2);
    expect(committedBefore).toBeLessThan(uniqueBlobs.size);

    proxy.requests.length = 0;
    const rerun = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http', '--json']);
    expect(rerun.exitCode, rerun.stdout + rerun.stderr).toBe(0);
    const result = JSON.parse(rerun.stdout);
    expect(result.ok).toBe(true);
    // what the killed run committed stays: the re-run uploads only the rest
    expect(commits(proxy.requests).length).toBeLessThanOrEqual(uniqueBlobs.size - committedBefore);
    for (const img of images) expect(await skopeoDigest(siteName(img.source, reg.host))).toBe(img.root.digest);
  });

  it('a failing image does not stop the others: all failures at the end, non-zero exit, a re-run finishes', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const images = makeImages(NAMES);
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    // the registry refuses one repository's manifest on every retry of this run
    proxy.inject({ fault: '500', match: /^PUT \/v2\/jetstack\/cert-manager-controller\/manifests\//, times: 6 });

    const failed = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http']);
    expect(failed.exitCode, failed.stdout + failed.stderr).toBe(11);
    expect(failed.stdout).toMatch(/failed: quay\.io\/jetstack\/cert-manager-controller:v1\.16\.1: .*answered 500/);
    expect(failed.stdout).toContain('3 pushed, 0 already there, 1 failed');
    expect(failed.stdout).toContain('NOT complete: run the same command again to finish');
    for (const img of images.filter((i) => !i.source.includes('cert-manager')))
      expect(await skopeoDigest(siteName(img.source, reg.host))).toBe(img.root.digest);

    const rerun = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http']);
    expect(rerun.exitCode, rerun.stdout + rerun.stderr).toBe(0);
    expect(rerun.stdout).toContain('1 pushed, 3 already there, 0 failed');
    for (const img of images) expect(await skopeoDigest(siteName(img.source, reg.host))).toBe(img.root.digest);
  });
  it('issue 15.10: SIGINT during a big upload: open sessions cancelled (DELETE), exit 130, the re-run completes', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    // two 70 MiB layers: above the chunked-upload threshold
    const images = makeImages(['docker.io/kserve/big:v1'], { layerBytes: 70 * 1024 * 1024 });
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images);
    const child = execa('node', [CLI, 'load', bundle, '--registry', proxy.host, '--plain-http', '--concurrency', '1'], {
      reject: false,
      env: CLI_ENV,
    });
    let exited = false;
    void child.finally(() => (exited = true));
    const deadline = Date.now() + 120_000;
    // a chunk went up: the registry holds part of a session
    while (!proxy.requests.some((r) => r.method === 'PATCH' && r.status === 202) && Date.now() < deadline && !exited)
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const stopped = await child;
    expect(stopped.exitCode, `${stopped.stdout}\n${stopped.stderr}`).toBe(130);
    expect(stopped.stderr).toContain('error[INTERRUPTED]');
    const deletes = proxy.requests.filter((r) => r.method === 'DELETE' && r.path.includes('/blobs/uploads/'));
    expect(deletes.length).toBeGreaterThanOrEqual(1);
    expect(deletes.every((r) => r.status === 204)).toBe(true);
    // no partial upload left (a cancelled session of distribution 2.8 keeps a 100-byte hash state)
    expect(await uploadSessionBytes(reg, 'kserve/big')).toBeLessThan(4096);

    const rerun = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http']);
    expect(rerun.exitCode, rerun.stdout + rerun.stderr).toBe(0);
    for (const img of images) expect(await skopeoDigest(siteName(img.source, reg.host))).toBe(img.root.digest);
    expect(await uploadSessionBytes(reg, 'kserve/big')).toBeLessThan(4096);
  }, 240_000);
});
