// Protocol edge cases with tiny in-process servers and lying bodies: the verifying stream,
// challenges, credentials, redirects that must not carry Authorization to another host.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY,
  OciLayout,
  closeRegistryConnections,
  copyImage,
  layoutSource,
  layoutTarget,
  registryTarget,
  worstCaseBackoffMs,
  dockerCredentials,
  parseChallenge,
  parseManifest,
  parsePlatform,
  platformMatches,
  RegistryClient,
  VerifyStream,
  type Digest,
} from '../../src/oci/index.ts';
import type { SealiftEvent } from '../../src/events.ts';
import { freePort, tempDir } from '../support/process.ts';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

async function drain(src: Readable, v: VerifyStream): Promise<void> {
  await pipeline(src, v, async (s: AsyncIterable<unknown>) => {
    for await (const _ of s) void _;
  });
}

afterAll(closeRegistryConnections);

describe('VerifyStream', () => {
  const body = Buffer.from('the layer bytes');
  const desc = { digest: digestOf(body), size: body.length };
  it.each([
    { name: 'exact body', data: body, error: undefined },
    { name: 'short body', data: body.subarray(0, 5), error: /ended after 5 of 15 bytes/ },
    { name: 'long body', data: Buffer.concat([body, Buffer.from('!')]), error: /longer than its size 15/ },
    {
      name: 'other bytes, same size',
      data: Buffer.from('THE LAYER BYTES'),
      error: new RegExp(`expected ${desc.digest}, got sha256:`),
    },
  ])('$name', async ({ data, error }) => {
    const run = drain(Readable.from([data]), new VerifyStream(desc, { where: 'test' }));
    if (error) await expect(run).rejects.toThrow(error);
    else await expect(run).resolves.toBeUndefined();
  });
});

describe('parsing', () => {
  it.each([
    {
      input:
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:istio/pilot:pull"',
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      scope: 'repository:istio/pilot:pull',
    },
    { input: 'Basic realm="sealift-test"', scheme: 'basic', realm: 'sealift-test', scope: undefined },
    {
      input: 'Bearer realm=http://127.0.0.1:5/token,service=x',
      scheme: 'bearer',
      realm: 'http://127.0.0.1:5/token',
      scope: undefined,
    },
  ])('challenge $input', ({ input, scheme, realm, scope }) => {
    const c = parseChallenge(input);
    expect(c?.scheme).toBe(scheme);
    expect(c?.params.realm).toBe(realm);
    expect(c?.params.scope).toBe(scope);
  });

  it('keeps manifest bytes and checks a pinned digest', () => {
    const bytes = Buffer.from('{"schemaVersion":2,"manifests":[]}');
    const m = parseManifest(bytes, { mediaType: 'application/vnd.oci.image.index.v1+json', where: 't' });
    expect(m.kind).toBe('index');
    expect(m.bytes).toBe(bytes);
    expect(m.digest).toBe(digestOf(bytes));
    expect(() => parseManifest(bytes, { where: 'x/y@d', expected: digestOf(Buffer.from('other')) })).toThrow(
      /x\/y@d: manifest digest mismatch: expected sha256:/,
    );
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1}'), { where: 'old' })).toThrow(
      /unsupported manifest schemaVersion 1/,
    );
  });

  it.each([
    { want: 'linux/amd64', have: { os: 'linux', architecture: 'amd64' }, match: true },
    { want: 'linux/arm64', have: { os: 'linux', architecture: 'arm64', variant: 'v8' }, match: true },
    { want: 'linux/arm64/v8', have: { os: 'linux', architecture: 'arm64' }, match: true },
    { want: 'linux/arm/v7', have: { os: 'linux', architecture: 'arm', variant: 'v6' }, match: false },
    { want: 'linux/amd64', have: { os: 'unknown', architecture: 'unknown' }, match: false },
  ])('platform $want vs $have.os/$have.architecture', ({ want, have, match }) => {
    expect(platformMatches(parsePlatform(want), have)).toBe(match);
  });
  it('rejects a malformed platform', () => expect(() => parsePlatform('amd64')).toThrow(/invalid platform "amd64"/));
});

describe('credentials', () => {
  it('reads auths, then credHelpers and credsStore through helper processes', async () => {
    await using dir = await tempDir();
    const bin = join(dir.path, 'bin');
    await mkdir(bin);
    await writeFile(
      join(bin, 'docker-credential-fake'),
      `#!/bin/sh\nread host\nif [ "$host" = "helped.example:5000" ]; then echo '{"Username":"helper-user","Secret":"helper-pass"}'; else echo "credentials not found in native keychain"; exit 1; fi\n`,
    );
    await chmod(join(bin, 'docker-credential-fake'), 0o755);
    await writeFile(
      join(dir.path, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') },
          'plain.example': { auth: Buffer.from('u:p:with:colons').toString('base64') },
        },
        credHelpers: { 'helped.example:5000': 'fake' },
        credsStore: 'fake',
      }),
    );
    const PATH = `${bin}:${process.env.PATH ?? ''}`;
    const saved = process.env.PATH;
    process.env.PATH = PATH;
    try {
      const lookup = dockerCredentials({ DOCKER_CONFIG: dir.path });
      expect(await lookup('docker.io')).toMatchObject({ username: 'hub', password: 'pw' });
      expect(await lookup('plain.example')).toMatchObject({ username: 'u', password: 'p:with:colons' });
      expect(await lookup('helped.example:5000')).toMatchObject({
        username: 'helper-user',
        password: 'helper-pass',
        source: 'docker-credential-fake',
      });
      expect(await lookup('unknown.example')).toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
  });

  /** fake `docker-credential-<name>` scripts in a temp bin dir, first on PATH while `fn` runs */
  async function withHelpers(
    helpers: Record<string, string>,
    config: Record<string, unknown>,
    fn: (dir: string) => Promise<void>,
  ): Promise<void> {
    await using dir = await tempDir();
    const bin = join(dir.path, 'bin');
    await mkdir(bin);
    for (const [name, script] of Object.entries(helpers)) {
      await writeFile(join(bin, `docker-credential-${name}`), `#!/bin/sh\n${script}\n`);
      await chmod(join(bin, `docker-credential-${name}`), 0o755);
    }
    await writeFile(join(dir.path, 'config.json'), JSON.stringify(config));
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved ?? ''}`;
    try {
      await fn(dir.path);
    } finally {
      process.env.PATH = saved;
    }
  }

  // answers only for the server address docker stores Docker Hub under
  const HUB_HELPER = `read server\nif [ "$server" = "https://index.docker.io/v1/" ]; then echo '{"Username":"hub-user","Secret":"hub-pass"}'; else echo "credentials not found in native keychain"; exit 1; fi`;

  it('bug 4: Docker Hub credentials from a credsStore or credHelpers helper are found (asked under https://index.docker.io/v1/)', async () => {
    for (const config of [
      { credsStore: 'hub' },
      { credHelpers: { 'index.docker.io': 'hub' } },
      { credHelpers: { 'docker.io': 'hub' } },
    ]) {
      await withHelpers({ hub: HUB_HELPER }, config, async (dir) => {
        const lookup = dockerCredentials({ DOCKER_CONFIG: dir });
        for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io'])
          expect(await lookup(host), `${JSON.stringify(config)} ${host}`).toMatchObject({
            username: 'hub-user',
            password: 'hub-pass',
          });
        expect(await lookup('quay.io')).toBeUndefined();
      });
    }
  });

  it('bug 4: a helper that hangs is killed after the timeout and the lookup fails naming it', async () => {
    await withHelpers({ stuck: 'sleep 30' }, { credsStore: 'stuck' }, async (dir) => {
      const started = Date.now();
      const err = await dockerCredentials(
        { DOCKER_CONFIG: dir },
        { helperTimeoutMs: 300 },
      )('quay.io').catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(err).toMatchObject({ code: 'AUTH_FAILED' });
      expect((err as Error).message).toBe(
        'credential helper docker-credential-stuck did not answer within 0.3 s for quay.io',
      );
    });
  });

  it('issue 15.9: a failing helper that prints the secret: not a byte of its output in the error or its JSON', async () => {
    const cases = {
      // stderr and stdout both carry the secret, exit 3
      loud: 'echo "token=S3CRET-VALUE for you" >&2; echo "{\\"Secret\\":\\"S3CRET-VALUE\\"}"; exit 3',
      // not JSON on success
      garbled: 'echo "S3CRET-VALUE"',
      // killed by a signal
      killed: 'echo "S3CRET-VALUE" >&2; kill -9 $$',
    };
    for (const [name, script] of Object.entries(cases)) {
      await withHelpers({ [name]: script }, { credsStore: name }, async (dir) => {
        const err = await dockerCredentials({ DOCKER_CONFIG: dir })('quay.io').catch((e: unknown) => e);
        expect(err, name).toMatchObject({ code: 'AUTH_FAILED' });
        const all = `${(err as Error).message} ${(err as { hint?: string }).hint} ${JSON.stringify(err)} ${JSON.stringify((err as { toJSON(): unknown }).toJSON())}`;
        expect(all, name).not.toContain('S3CRET');
        expect(all).toContain(`docker-credential-${name}`);
      });
    }
  });
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; host: string; [Symbol.asyncDispose](): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    host,
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('RegistryClient over HTTP', () => {
  it('follows a blob redirect to another host without sending the Authorization header there', async () => {
    const blob = Buffer.from('blob in object storage');
    const seen: (string | undefined)[] = [];
    await using storage = await serve((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': blob.length }).end(blob);
    });
    await using registry = await serve((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('alice:pw').toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
        return;
      }
      res.writeHead(307, { location: `http://${storage.host}/bucket/blob?sig=1` }).end();
    });
    const client = new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: async () => ({ username: 'alice', password: 'pw', source: 'test' }),
    });
    const chunks: Buffer[] = [];
    for await (const c of await client.fetchBlob('repo', { digest: digestOf(blob), size: blob.length }))
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    expect(seen).toEqual([undefined]);
  });

  it('waits as long as Retry-After says on 429, and reports the retry as an event', async () => {
    let calls = 0;
    const body = Buffer.from(
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
    );
    await using registry = await serve((_req, res) => {
      if (calls++ === 0) res.writeHead(429, { 'retry-after': '1' }).end();
      else
        res
          .writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': body.length })
          .end(body);
    });
    const events: SealiftEvent[] = [];
    const client = new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: async () => undefined,
      onEvent: (e) => events.push(e),
    });
    const t = Date.now();
    const m = await client.fetchManifest('repo', 'v1');
    expect(m.digest).toBe(digestOf(body));
    expect(Date.now() - t).toBeGreaterThanOrEqual(950);
    expect(events).toEqual([
      expect.objectContaining({ type: 'retry', delayMs: 1000, reason: `429 from ${registry.host}` }),
    ]);
  });

  it('gives up after the retry budget with the registry named and what to do', async () => {
    await using registry = await serve((_req, res) => res.writeHead(503).end());
    const client = new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: async () => undefined,
      retry: { attempts: 2, baseDelayMs: 1 },
    });
    await expect(client.fetchManifest('repo', 'v1')).rejects.toThrow(
      `registry ${registry.host} answered 503 to GET http://${registry.host}/v2/repo/manifests/v1`,
    );
  });
});

describe('resuming a partial blob', () => {
  const blob = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) & 0xff;
  const desc = { digest: digestOf(blob), size: blob.length };

  async function setup(honourRange: boolean) {
    const ranges: (string | undefined)[] = [];
    const srv = await serve((req, res) => {
      ranges.push(req.headers.range);
      const m = /^bytes=(\d+)-/.exec(req.headers.range ?? '');
      if (m && honourRange) {
        const from = Number(m[1]);
        res
          .writeHead(206, {
            'content-range': `bytes ${from}-${blob.length - 1}/${blob.length}`,
            'content-length': blob.length - from,
          })
          .end(blob.subarray(from));
      } else res.writeHead(200, { 'content-length': blob.length }).end(blob);
    });
    const client = new RegistryClient(srv.host, {
      hosts: { [srv.host]: { plainHttp: true } },
      credentials: async () => undefined,
    });
    return { srv, client, ranges };
  }

  it.each([
    { honourRange: true, expectRanges: [`bytes=${1 << 20}-${3 * 1024 * 1024 - 1}`] },
    { honourRange: false, expectRanges: [`bytes=${1 << 20}-${3 * 1024 * 1024 - 1}`, undefined] },
  ])(
    'continues with Range when the server honours it (honours: $honourRange)',
    async ({ honourRange, expectRanges }) => {
      await using dir = await tempDir();
      const { srv, client, ranges } = await setup(honourRange);
      await using _srv = srv;
      const layout = await OciLayout.open(dir.path);
      await mkdir(join(dir.path, '.ingest'), { recursive: true });
      await writeFile(join(dir.path, '.ingest', `${desc.digest.replace(':', '-')}.partial`), blob.subarray(0, 1 << 20));
      const outcome = await layout.ingestBlob(
        desc,
        () => client.fetchBlob('r', desc),
        (off) => client.fetchBlobFrom('r', desc, off),
      );
      expect(outcome).toBe('written');
      expect(ranges).toEqual(expectRanges);
      expect((await readFile(layout.blobPath(desc.digest))).equals(blob)).toBe(true);
      expect(await readdir(join(dir.path, '.ingest'))).toEqual([]);
    },
  );

  it('a partial holding other bytes fails the digest check and is removed', async () => {
    await using dir = await tempDir();
    const { srv, client } = await setup(true);
    await using _srv = srv;
    const layout = await OciLayout.open(dir.path);
    await mkdir(join(dir.path, '.ingest'), { recursive: true });
    await writeFile(join(dir.path, '.ingest', `${desc.digest.replace(':', '-')}.partial`), Buffer.alloc(1 << 20, 1));
    await expect(
      layout.ingestBlob(
        desc,
        () => client.fetchBlob('r', desc),
        (off) => client.fetchBlobFrom('r', desc, off),
      ),
    ).rejects.toThrow(`expected ${desc.digest}, got sha256:`);
    expect(await readdir(join(dir.path, '.ingest'))).toEqual([]);
    expect(await layout.hasBlob(desc)).toBe(false);
  });
});

describe('bug 5: retries do not multiply; a dead host fails fast', () => {
  const anonymous = async () => undefined;

  it.each([
    { name: 'a closed loopback port', host: async () => `127.0.0.1:${await freePort()}`, fault: 'refused' },
    { name: 'a name that never resolves', host: async () => 'nosuchhost.invalid', fault: 'unresolvable' },
  ])('$name: one try, the host named, in well under a second', async ({ host: hostOf, fault }) => {
    const host = await hostOf();
    const events: SealiftEvent[] = [];
    const client = new RegistryClient(host, {
      hosts: { [host]: { plainHttp: true } },
      credentials: anonymous,
      onEvent: (e) => events.push(e),
    });
    for (const call of [() => client.fetchManifest('istio/pilot', '1.23.2'), () => client.ping()]) {
      const started = Date.now();
      const err = await call().catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(err).toMatchObject({ code: 'NETWORK_ERROR', details: { host, fault, temporary: false } });
      expect((err as Error).message).toContain(host);
      expect((err as { hint?: string }).hint).toContain(host);
      expect(elapsed).toBeLessThan(1000);
    }
    expect(events.filter((e) => e.type === 'retry')).toEqual([]);
  });

  it('a registry that keeps failing uploads: one budget per blob (at most DEFAULT_RETRY.attempts tries), within the stated worst case', async () => {
    // HEAD says the blob is missing, every upload request answers 503
    const requests: string[] = [];
    await using registry = await serve((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(req.method === 'HEAD' ? 404 : 503, { 'content-length': 0 }).end();
    });
    await using tmp = await tempDir();
    const layout = await OciLayout.open(tmp.path);
    const layer = Buffer.from('a layer that never arrives');
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: digestOf(config),
          size: config.length,
        },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length }],
      }),
    );
    await layout.writeBlob({ digest: digestOf(layer), size: layer.length }, layer);
    await layout.writeBlob({ digest: digestOf(config), size: config.length }, config);
    const raw = parseManifest(manifest, { mediaType: 'application/vnd.oci.image.manifest.v1+json', where: 'test' });
    await layoutTarget(layout).pushManifest(raw, { root: true, tag: 'v1' });
    const client = new RegistryClient(registry.host, {
      hosts: { [registry.host]: { plainHttp: true } },
      credentials: anonymous,
    });
    const started = Date.now();
    const err = await copyImage(layoutSource(layout), registryTarget(client, 'repo'), { selector: 'v1' }).catch(
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    expect(err).toMatchObject({ code: 'REGISTRY_ERROR', details: { status: 503 } });
    // two blobs (config and layer), each with one budget for all its requests: today 5 POSTs
    // each, where nested loops allowed 6 x 4 x 5 = 120
    const posts = requests.filter((r) => r.startsWith('POST '));
    console.log(
      `bug 5: ${posts.length} upload starts for 2 blobs in ${elapsed} ms (worst case ${worstCaseBackoffMs(DEFAULT_RETRY)} ms)`,
    );
    // (the copy fails as soon as one blob's budget is spent: the other may stop a try short)
    expect(posts.length).toBeGreaterThanOrEqual(DEFAULT_RETRY.attempts);
    expect(posts.length).toBeLessThanOrEqual(2 * DEFAULT_RETRY.attempts);
    expect(elapsed).toBeLessThan(worstCaseBackoffMs(DEFAULT_RETRY) + 1000);
  }, 20_000);
});
