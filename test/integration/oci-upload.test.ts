// Bug 6 (issue 8) and issue 15.10: a large blob goes up in PATCH chunks and, after a failure,
// continues from the offset the registry reports for its upload session (GET on the upload URL,
// `Range`), against the real docker-registry 2.8.2 behind the fault proxy. No upload session is
// left behind in the registry, whatever happened.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SealiftEvent } from '../../src/events.ts';
import { closeRegistryConnections, RegistryClient, VerifyStream, type Digest } from '../../src/oci/index.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, uploadSessionBytes } from '../support/registry.ts';

const SIZE = 200 * 1024 * 1024;
const MiB = 1024 * 1024;
let work: Awaited<ReturnType<typeof tempDir>>;
let file: string;
let desc: { digest: Digest; size: number };

beforeAll(async () => {
  work = await tempDir();
  file = join(work.path, 'layer.bin');
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  for (let n = 0; n < SIZE; n += MiB) {
    const chunk = randomBytes(MiB);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await finished(out);
  desc = { digest: `sha256:${hash.digest('hex')}` as Digest, size: SIZE };
}, 120_000);

afterAll(async () => {
  await closeRegistryConnections();
  await work?.[Symbol.asyncDispose]();
});

/** the blob file as a stream that fails unless it is exactly the descriptor's bytes */
async function openBlob() {
  const verify = new VerifyStream(desc, { where: file });
  pipeline(createReadStream(file), verify, () => undefined);
  return verify;
}

async function pushThroughCut(bufferRequests: boolean) {
  await using registry = await startRegistry();
  await using proxy = await startFaultProxy(registry.host, { bufferRequests });
  // the connection is cut once half of the blob's bytes went out, whichever request carries them
  proxy.inject({ fault: 'cut', match: /^(PATCH|PUT) \/v2\/.*\/blobs\/uploads\//, afterBytes: SIZE / 2 });
  const events: SealiftEvent[] = [];
  const client = new RegistryClient(proxy.host, {
    hosts: { [proxy.host]: { plainHttp: true } },
    credentials: async () => undefined,
    onEvent: (e) => events.push(e),
  });
  await client.pushBlob('big/layer', desc, openBlob);
  const direct = new RegistryClient(registry.host, {
    hosts: { [registry.host]: { plainHttp: true } },
    credentials: async () => undefined,
  });
  // the registry verified the digest when it committed the upload; it serves the blob
  expect(await direct.blobExists('big/layer', desc.digest)).toBe(true);
  expect(proxy.pending(), 'the cut happened').toBe(0);
  // the session that was cut is cancelled. One that distribution 2.8 dropped keeps the bytes it
  // got and refuses a DELETE (its state token no longer matches them): only the registry's
  // upload purging removes those
  const left = await uploadSessionBytes(registry, 'big/layer');
  if (bufferRequests) expect(left).toBeLessThan(4096);
  else expect(left).toBeLessThanOrEqual(SIZE / 2 + 4096);
  const sent = proxy.received();
  const patches = proxy.requests.filter((r) => r.method === 'PATCH').length;
  return { sent, patches, events };
}

describe('bug 6: chunked, resumable uploads', () => {
  it('a 200 MB upload cut midway continues from the registry’s offset: bytes sent < 1.5x the blob', async () => {
    // the registry never sees the cut request (a buffering proxy in front, as nginx is by default)
    const { sent, patches, events } = await pushThroughCut(true);
    console.log(
      `bug 6: ${(sent / MiB).toFixed(1)} MiB sent for a ${SIZE / MiB} MiB blob cut at ${SIZE / 2 / MiB} MiB (${(sent / SIZE).toFixed(2)}x, ${patches} PATCH requests)`,
    );
    expect(sent).toBeLessThan(1.5 * SIZE);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'info',
        message: expect.stringMatching(/resuming the upload of .* at byte \d+/),
      }),
    );
  }, 240_000);

  it('when the registry drops the session (distribution 2.8 does after a PATCH cut mid-body), it starts again and completes', async () => {
    const { sent, events } = await pushThroughCut(false);
    console.log(
      `bug 6: session dropped by the registry: ${(sent / MiB).toFixed(1)} MiB sent (${(sent / SIZE).toFixed(2)}x)`,
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'info', message: expect.stringMatching(/starts again at byte 0/) }),
    );
  }, 240_000);
});
