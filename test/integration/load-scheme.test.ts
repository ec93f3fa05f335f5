// `sealift load` and the naming scheme bundle.json records: a bundle made for a scoped environment
// loads under scoped names without --scheme (its values name REG/<upstream-host>/...), and a load
// into another address or by another scheme than the values name says so precisely.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { makeImages, sealift, skopeoDigest, writeBundle } from './load-fixtures.ts';

// two upstream hosts with one path: only the scoped scheme keeps them apart
const NAMES = ['docker.io/x/y:1.0', 'quay.io/x/y:1.0', 'gcr.io/knative-releases/queue:1.15.2'];

interface LoadJson {
  ok: boolean;
  registry: string;
  scheme: string;
  values?: { registry: string; scheme: string; matches: boolean };
}

function bundleFor(dir: string, images: ReturnType<typeof makeImages>, registry: { host: string; scheme: string }) {
  return writeBundle(
    join(dir, 'stage'),
    join(dir, 'b.tar'),
    images,
    {},
    {
      editIndex: (idx) =>
        Object.assign(idx, {
          environment: 'site',
          registry: { host: registry.host, plainHttp: true, scheme: registry.scheme },
        }),
    },
  );
}

describe('load: the scheme and registry bundle.json records', () => {
  it('defaults --scheme to the bundle values scheme: scoped names, no collision, no warning', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const images = makeImages(NAMES);
    const bundle = await bundleFor(tmp.path, images, { host: reg.host, scheme: 'scoped' });
    const r = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const j = JSON.parse(String(r.stdout)) as LoadJson;
    expect(j).toMatchObject({
      ok: true,
      scheme: 'scoped',
      values: { registry: reg.host, scheme: 'scoped', matches: true },
    });
    expect(String(r.stderr)).not.toContain('values name images');
    // each image under REG/<upstream-host>/<path>, with its source digest (skopeo, an independent client)
    for (const img of images) {
      const target = `${reg.host}/${img.source}`;
      expect(await skopeoDigest(target), target).toBe(img.root.digest);
    }

    // --scheme host-swap overrides the bundle, and then the two x/y collide: refused with the hint
    const swapped = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--scheme', 'host-swap']);
    expect(swapped.exitCode).not.toBe(0);
    expect(String(swapped.stderr)).toContain('--scheme scoped');
  });

  it('warns, naming both, when --registry or --scheme differ from what the values name', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host); // another address of the same registry
    const images = makeImages([NAMES[0]!, NAMES[2]!]);
    const bundle = await bundleFor(tmp.path, images, { host: reg.host, scheme: 'scoped' });

    const other = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http', '--json']);
    expect(other.exitCode, String(other.stderr)).toBe(0);
    expect((JSON.parse(String(other.stdout)) as LoadJson).values).toEqual({
      registry: reg.host,
      scheme: 'scoped',
      matches: false,
    });
    expect(String(other.stderr)).toContain(
      `the bundle's values name images as ${reg.host}/docker.io/istio/pilot (registry ${reg.host}, not ${proxy.host}); this load puts them at ${proxy.host}/docker.io/istio/pilot`,
    );
    expect(String(other.stderr)).toContain(`set registry.host: ${proxy.host} in the environment`);

    const swapped = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--scheme', 'host-swap']);
    expect(swapped.exitCode, String(swapped.stderr)).toBe(0);
    expect(String(swapped.stderr)).toContain(
      `the bundle's values name images as ${reg.host}/docker.io/istio/pilot (scheme scoped, not host-swap)`,
    );
    expect(String(swapped.stderr)).toContain('Load with --scheme scoped');
    expect(await skopeoDigest(`${reg.host}/x/y:1.0`)).toBe(images[0]!.root.digest);
  });

  it('a collision in a bundle whose values are host-swapped: the hint says to change the environment and bundle again', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using proxy = await startFaultProxy(reg.host);
    const bundle = await bundleFor(tmp.path, makeImages(NAMES), { host: reg.host, scheme: 'host-swap' });
    const r = await sealift(['load', bundle, '--registry', proxy.host, '--plain-http']);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toContain('docker.io/x/y and quay.io/x/y would both become');
    expect(String(r.stderr)).toContain(
      'Set registry.scheme: scoped in environments/site.yaml, run sealift generate, images and bundle again',
    );
    // refused before the registry sees a request
    expect(proxy.requests).toEqual([]);
  });
});
