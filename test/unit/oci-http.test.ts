// File downloads (release files) against tiny in-process servers that redirect, fail for a
// while, cut bodies short or send other bytes: what lands on disk, what is retried, what is not.
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SealiftEvent } from '../../src/events.ts';
import { closeRegistryConnections } from '../../src/oci/index.ts';
import { fetchFile, fetchText } from '../../src/oci/http.ts';
import { fetchManifestFile, saveManifestFile } from '../../src/render/index.ts';
import { tempDir } from '../support/process.ts';

const BODY = Buffer.from('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n'.repeat(2000));
const SHA = createHash('sha256').update(BODY).digest('hex');
const FAST = { retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 } };

afterAll(closeRegistryConnections);

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    requests,
    url: (path: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** serves BODY at /file; the first `failures` requests get `fail` instead */
function flaky(failures: number, fail: (res: ServerResponse) => void) {
  let n = 0;
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/moved') return void res.writeHead(302, { location: '/file' }).end();
    if (req.url !== '/file') return void res.writeHead(404).end('not here');
    if (n++ < failures) return fail(res);
    res.writeHead(200, { 'content-length': BODY.length }).end(BODY);
  };
}

describe('fetchFile', () => {
  it('follows a redirect and writes the file whole, with its sha256 and size', async () => {
    await using srv = await serve(flaky(0, () => {}));
    await using tmp = await tempDir();
    const dest = join(tmp.path, 'releases', 'serving', 'serving-core.yaml');
    const got = await fetchFile(srv.url('/moved'), dest, { expectedSha256: SHA.toUpperCase() });
    expect(got).toEqual({ path: dest, sha256: SHA, size: BODY.length });
    expect((await readFile(dest)).equals(BODY)).toBe(true);
    expect(srv.requests).toEqual(['/moved', '/file']);
    expect(await readdir(join(tmp.path, 'releases', 'serving'))).toEqual(['serving-core.yaml']);
  });

  it('retries 503 (honouring Retry-After) and a body cut short, with retry events', async () => {
    const faults = [
      (res: ServerResponse) => void res.writeHead(503, { 'retry-after': '0' }).end('busy'),
      (res: ServerResponse) => {
        res.writeHead(200, { 'content-length': BODY.length });
        res.write(BODY.subarray(0, 1000), () => res.socket?.destroy());
      },
    ];
    await using srv = await serve(flaky(faults.length, (res) => faults.shift()!(res)));
    await using tmp = await tempDir();
    const events: SealiftEvent[] = [];
    const dest = join(tmp.path, 'b.yaml');
    const got = await fetchFile(srv.url('/file'), dest, {
      ...FAST,
      expectedSha256: SHA,
      onEvent: (e) => events.push(e),
    });
    expect(got.sha256).toBe(SHA);
    expect((await readFile(dest)).equals(BODY)).toBe(true);
    expect(srv.requests).toEqual(['/file', '/file', '/file']);
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries.map((e) => e.attempt)).toEqual([1, 2]);
    expect(retries[0]).toMatchObject({ delayMs: 0, reason: expect.stringContaining('HTTP 503') });
    expect(await readdir(tmp.path)).toEqual(['b.yaml']);
  });

  it('a wrong sha256 is DIGEST_MISMATCH, not retried, and leaves nothing (an older file stays as it was)', async () => {
    await using srv = await serve(flaky(0, () => {}));
    await using tmp = await tempDir();
    const dest = join(tmp.path, 'a.yaml');
    await writeFile(dest, 'old');
    const wrong = '0'.repeat(64);
    const err = await fetchFile(srv.url('/file'), dest, { ...FAST, expectedSha256: wrong }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect((err as Error).message).toContain(`expected ${wrong}, got ${SHA}`);
    expect(srv.requests).toEqual(['/file']);
    expect(await readdir(tmp.path)).toEqual(['a.yaml']);
    expect(await readFile(dest, 'utf8')).toBe('old');
  });

  it('404 is NOT_FOUND at once, with the caller’s hint; a refused connection is NETWORK_ERROR at once, naming the host', async () => {
    await using srv = await serve(flaky(0, () => {}));
    await using tmp = await tempDir();
    const missing = await fetchFile(srv.url('/nope.yaml'), join(tmp.path, 'x.yaml'), {
      ...FAST,
      hint: 'Check the release file URL.',
    }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'NOT_FOUND', hint: 'Check the release file URL.' });
    expect((missing as Error).message).toMatch(/answered HTTP 404/);
    expect(srv.requests).toEqual(['/nope.yaml']);

    const events: SealiftEvent[] = [];
    const closed = srv.url('/file').replace(/:\d+\//, ':1/');
    const refused = await fetchFile(closed, join(tmp.path, 'y.yaml'), {
      ...FAST,
      onEvent: (e) => events.push(e),
    }).catch((e: unknown) => e);
    // a refused connection is not retried (bug 5): one try, the host named
    expect(refused).toMatchObject({ code: 'NETWORK_ERROR', details: { host: '127.0.0.1:1', fault: 'refused' } });
    expect((refused as Error).message).toContain(
      'download of http://127.0.0.1:1/file: GET http://127.0.0.1:1/file: 127.0.0.1:1 refused the connection',
    );
    expect(events.filter((e) => e.type === 'retry')).toHaveLength(0);
    expect(await readdir(tmp.path)).toEqual([]);
  });
});

describe('fetchText', () => {
  it('returns the text and its sha256; refuses a body over maxBytes', async () => {
    await using srv = await serve(flaky(0, () => {}));
    const got = await fetchText(srv.url('/file'));
    expect(got).toEqual({ text: BODY.toString('utf8'), sha256: SHA, size: BODY.length });
    await expect(fetchText(srv.url('/file'), { ...FAST, maxBytes: 1000 })).rejects.toThrow(/larger than 1000 bytes/);
    expect(srv.requests).toHaveLength(2);
  });
});

describe('release files (render): a URL through fetchFile, a local path or file:// copied, the same result', () => {
  it('saves each with its sha256; a missing one names the path, a 404 names the URL and where to fix it', async () => {
    await using srv = await serve(flaky(0, () => {}));
    await using tmp = await tempDir();
    const local = join(tmp.path, 'local.yaml');
    await writeFile(local, BODY);
    for (const url of [srv.url('/file'), local, `file://${local}`]) {
      const dest = join(tmp.path, 'site', 'releases', 'x', 'a.yaml');
      expect(await saveManifestFile(url, dest)).toEqual({ path: dest, sha256: SHA, size: BODY.length });
      expect((await readFile(dest)).equals(BODY)).toBe(true);
      expect(await fetchManifestFile(url)).toBe(BODY.toString('utf8'));
    }
    expect(await readdir(join(tmp.path, 'site', 'releases', 'x'))).toEqual(['a.yaml']);
    await expect(fetchManifestFile(join(tmp.path, 'nope.yaml'))).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(`cannot read release file ${join(tmp.path, 'nope.yaml')}`),
    });
    await expect(
      saveManifestFile(srv.url('/v9.9.9/serving-core.yaml'), join(tmp.path, 'b.yaml')),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('/v9.9.9/serving-core.yaml answered HTTP 404'),
      hint: expect.stringContaining('environment file'),
    });
  });
});
