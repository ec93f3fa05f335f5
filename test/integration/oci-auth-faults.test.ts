// Auth (Basic via htpasswd, Bearer via a token server), faults injected by a proxy, corrupt
// registry storage: the client either completes with the source's digests or names the problem.
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRegistryConnections,
  copyImage,
  createCopySession,
  dockerCredentials,
  layoutSource,
  layoutTarget,
  OciLayout,
  RegistryClient,
  registrySource,
  registryTarget,
  ANNOTATION_SOURCE,
} from '../../src/oci/index.ts';
import type { SealiftEvent } from '../../src/events.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { startTokenServer } from '../support/token-server.ts';

// bcrypt of "s3cret" for user alice (htpasswd -nbB alice s3cret); distribution accepts bcrypt only
const HTPASSWD = 'alice:$2y$05$vb6o4iClNIzKH75aBLwlD.RI1mOHlxYzNvpqmF5joKBP.z5JyFvVq\n';

let work: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  work = await tempDir();
});
afterAll(async () => {
  await closeRegistryConnections();
  await work?.[Symbol.asyncDispose]();
});

async function dockerConfig(name: string, host: string, user: string, pass: string): Promise<string> {
  const dir = join(work.path, name);
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } }),
  );
  return dir;
}

const specs = [
  { ref: 'docker.io/istio/pilot:1.23.2', platforms: ['linux/amd64', 'linux/arm64'], base: 'b', layers: [200 << 10] },
  { ref: 'docker.io/istio/proxyv2:1.23.2', base: 'b', format: 'docker' as const, layers: [150 << 10, 10 << 10] },
];

async function pullAll(
  client: RegistryClient,
  images: SeededImage[],
  dir: string,
  onEvent?: (e: SealiftEvent) => void,
) {
  const layout = await OciLayout.open(dir);
  const session = createCopySession(3);
  const out = [];
  for (const img of images) {
    out.push(
      await copyImage(registrySource(client, img.repository), layoutTarget(layout), {
        selector: img.tag,
        tag: img.tag,
        annotations: { [ANNOTATION_SOURCE]: img.ref },
        session,
        ...(onEvent ? { onEvent } : {}),
      }),
    );
  }
  return { layout, results: out };
}

describe('auth', () => {
  it('Basic auth from a docker config; a wrong password names the registry', async () => {
    await using registry = await startRegistry({ htpasswd: HTPASSWD });
    const images = await seedImages(registry.host, specs, {
      workDir: work.path,
      creds: { username: 'alice', password: 's3cret' },
    });
    const hosts = { [registry.host]: { plainHttp: true } };
    const good = dockerCredentials({
      DOCKER_CONFIG: await dockerConfig('basic-good', registry.host, 'alice', 's3cret'),
    });
    const { results } = await pullAll(
      new RegistryClient(registry.host, { hosts, credentials: good }),
      images,
      join(work.path, 'basic-layout'),
    );
    expect(results.map((r) => r.root.digest)).toEqual(images.map((i) => i.digest));

    const bad = dockerCredentials({ DOCKER_CONFIG: await dockerConfig('basic-bad', registry.host, 'alice', 'wrong') });
    const err = await new RegistryClient(registry.host, { hosts, credentials: bad })
      .fetchManifest('istio/pilot', '1.23.2')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED' });
    expect(String((err as Error).message)).toContain(
      `registry ${registry.host} refused the credentials of user "alice"`,
    );
    expect(String((err as Error).message)).not.toContain('wrong');

    const none = await new RegistryClient(registry.host, { hosts, credentials: async () => undefined })
      .ping()
      .catch((e: unknown) => e);
    expect(none).toMatchObject({ code: 'AUTH_FAILED' });
    expect(String((none as Error).message)).toContain(`registry ${registry.host} requires credentials`);
  });

  it('Bearer tokens with repository scopes, for pull and push with cross-repository mount', async () => {
    await using tokens = await startTokenServer({ users: { alice: 's3cret' } });
    await using registry = await startRegistry({ token: tokens.registryConfig });
    const images = await seedImages(registry.host, specs, {
      workDir: work.path,
      creds: { username: 'alice', password: 's3cret' },
    });
    const hosts = { [registry.host]: { plainHttp: true } };
    const authFile = join(work.path, 'auth.json');
    await writeFile(
      authFile,
      JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }),
    );
    const client = new RegistryClient(registry.host, {
      hosts,
      credentials: dockerCredentials({ REGISTRY_AUTH_FILE: authFile, DOCKER_CONFIG: join(work.path, 'nowhere') }),
    });
    tokens.requests.length = 0;
    const { layout, results } = await pullAll(client, images, join(work.path, 'bearer-layout'));
    expect(results.map((r) => r.root.digest)).toEqual(images.map((i) => i.digest));
    expect(tokens.requests.filter((r) => r.granted).map((r) => r.scopes.join(' '))).toEqual(
      expect.arrayContaining(['repository:istio/pilot:pull', 'repository:istio/proxyv2:pull']),
    );
    // push into new repositories: the second image's shared base layer is mounted, not uploaded
    const pilot = images[0] as SeededImage;
    const proxy = images[1] as SeededImage;
    await copyImage(layoutSource(layout), registryTarget(client, 'mirror/pilot'), {
      selector: pilot.ref,
      tag: pilot.tag,
    });
    const outcomes: string[] = [];
    await copyImage(layoutSource(layout), registryTarget(client, 'mirror/proxyv2', { mountFrom: ['mirror/pilot'] }), {
      selector: proxy.ref,
      tag: proxy.tag,
      onEvent: (e) => e.type === 'blob:done' && outcomes.push(e.skipped ?? 'written'),
    });
    expect(outcomes).toContain('mounted');
    expect((await client.resolve({ repository: 'mirror/proxyv2', selector: '1.23.2' })).digest).toBe(proxy.digest);
    expect(
      tokens.requests.some(
        (r) =>
          r.scopes.includes('repository:mirror/proxyv2:pull,push') && r.scopes.includes('repository:mirror/pilot:pull'),
      ),
    ).toBe(true);

    const bad = new RegistryClient(registry.host, {
      hosts,
      credentials: async () => ({ username: 'alice', password: 'nope', source: 'test' }),
    });
    const err = await bad.fetchManifest('istio/pilot', '1.23.2').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED' });
    expect(String((err as Error).message)).toContain(
      `registry ${registry.host} refused the credentials of user "alice"`,
    );
  });
});

describe('faults', () => {
  it('survives resets, truncated bodies, 500 and 429 through a proxy, with the source digests', async () => {
    await using registry = await startRegistry();
    const images = await seedImages(registry.host, specs, { workDir: work.path });
    await using proxy = await startFaultProxy(registry.host);
    proxy.inject({ fault: 'reset', match: /^GET \/v2\/istio\/pilot\/manifests\//, times: 1 });
    proxy.inject({ fault: '429', match: /^GET \/v2\/istio\/proxyv2\/manifests\//, times: 1, retryAfter: 1 });
    proxy.inject({ fault: 'truncate', match: /^GET .*\/blobs\/sha256:/, times: 2 });
    proxy.inject({ fault: '500', match: /^GET .*\/blobs\/sha256:/, times: 2 });
    proxy.inject({ fault: 'reset', match: /^GET .*\/blobs\/sha256:/, times: 1 });
    const events: SealiftEvent[] = [];
    const client = new RegistryClient('docker.io', {
      onEvent: (e) => events.push(e),
      hosts: { 'docker.io': { mirrors: [proxy.host] }, [proxy.host]: { plainHttp: true } },
      credentials: async () => undefined,
      retry: { baseDelayMs: 50 },
    });
    const started = Date.now();
    const { layout, results } = await pullAll(client, images, join(work.path, 'fault-layout'), (e) => events.push(e));
    expect(results.map((r) => r.root.digest)).toEqual(images.map((i) => i.digest));
    expect(proxy.pending()).toBe(0);
    expect(
      proxy.requests
        .filter((r) => r.fault)
        .map((r) => r.fault)
        .sort(),
    ).toEqual(['429', '500', '500', 'reset', 'reset', 'truncate', 'truncate']);
    expect(events.filter((e) => e.type === 'retry').length).toBeGreaterThanOrEqual(7);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000); // Retry-After: 1 was honoured
    for (const img of images)
      for (const [d, size] of Object.entries(img.blobs))
        expect(await layout.hasBlob({ digest: d as never, size })).toBe(true);
    // nothing was fetched twice after it had been stored
    const blobGets = proxy.requests.filter(
      (r) => r.method === 'GET' && r.path.includes('/blobs/') && r.status === 200 && !r.fault,
    );
    expect(new Set(blobGets.map((r) => r.path.split('/').pop())).size).toBe(blobGets.length);
  });

  it('detects a blob whose bytes do not match its digest', async () => {
    await using registry = await startRegistry();
    const [img] = await seedImages(registry.host, [{ ref: 'docker.io/kserve/router:v0.15.2', layers: [64 << 10] }], {
      workDir: work.path,
    });
    const manifest = await new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: async () => undefined,
    }).fetchManifest('kserve/router', 'v0.15.2');
    if (manifest.kind !== 'manifest') throw new Error('expected a manifest');
    const layer = manifest.parsed.layers[0]!;
    const hex = layer.digest.slice(7);
    const data = join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(data);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff; // same size, other bytes
    await writeFile(data, bytes);
    const client = new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: async () => undefined,
    });
    const dir = join(work.path, 'corrupt-layout');
    const err = await pullAll(client, [img!], dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(String((err as Error).message)).toContain(`expected ${layer.digest}, got sha256:`);
    // nothing of the bad blob is left in the layout
    const names = await readdir(join(dir, 'blobs', 'sha256'));
    expect(names).not.toContain(hex);
  });
});
