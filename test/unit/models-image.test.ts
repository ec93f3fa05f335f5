// The modelcar image sealift builds: the same inputs give the same digest (whatever the files'
// mtimes, modes or checkout path), other content gives another, and what the layers hold runs
// KServe's own modelcar commands with the carried static shell (Debian busybox-static's
// /bin/busybox, from the .deb; no network).
import { execa } from 'execa';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildModelImage, modelImageReference, type ModelSpec } from '../../src/models/index.ts';
import { OciLayout } from '../../src/oci/layout.ts';
import type { Manifest } from '../../src/oci/types.ts';
import { tempDir } from '../support/process.ts';

const BUSYBOX = process.env.BUSYBOX_BIN ?? '/bin/busybox';
const IRIS: ModelSpec = { name: 'sklearn-iris', from: 'model', format: 'sklearn', tag: 'v1' };

async function modelDir(base: string, mtime: number, mode: number): Promise<void> {
  await mkdir(join(base, 'model', 'sub'), { recursive: true });
  await writeFile(join(base, 'model', 'model.joblib'), 'joblib bytes');
  await writeFile(join(base, 'model', 'sub', 'extra.txt'), 'more');
  for (const f of ['model.joblib', 'sub/extra.txt']) {
    await chmod(join(base, 'model', f), mode);
    await utimes(join(base, 'model', f), mtime, mtime);
  }
}

async function build(base: string, spec: ModelSpec = IRIS) {
  const layout = await OciLayout.open(join(base, 'layout'));
  return { layout, image: await buildModelImage(spec, { layout, baseDir: base, shell: BUSYBOX }) };
}

describe('modelcar image', () => {
  it('has the same digest when built twice from the same inputs, and another for other content', async () => {
    await using a = await tempDir();
    await using b = await tempDir();
    await modelDir(a.path, 1_000_000, 0o600);
    await modelDir(b.path, 2_000_000_000, 0o755);
    const first = await build(a.path);
    const second = await build(b.path);
    expect(first.image.reference).toBe('sealift.invalid/models/sklearn-iris:v1');
    expect(first.image.root.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(second.image.root.digest).toBe(first.image.root.digest);
    // again into the same layout: nothing changes, index.json holds it once
    const again = await buildModelImage(IRIS, { layout: first.layout, baseDir: a.path, shell: BUSYBOX });
    expect(again.root.digest).toBe(first.image.root.digest);
    expect((await first.layout.find(modelImageReference(IRIS))).length).toBe(1);

    await writeFile(join(b.path, 'model', 'model.joblib'), 'joblib bytez');
    const changed = await build(b.path);
    expect(changed.image.root.digest).not.toBe(first.image.root.digest);
    // the shell layer is the same for every model: stored once across images
    expect(changed.image.blobs[1]!.digest).toBe(first.image.blobs[1]!.digest);
    const renamed = await build(a.path, { ...IRIS, tag: 'v2' });
    expect(renamed.image.root.digest).not.toBe(first.image.root.digest);
  });

  it("holds /models and a static shell that runs KServe's modelcar commands", async () => {
    await using w = await tempDir();
    await modelDir(w.path, 1_000_000, 0o644);
    const { layout, image } = await build(w.path);
    const manifest = JSON.parse((await layout.readBlob(image.root)).toString()) as Manifest;
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+gzip',
    ]);
    const config = JSON.parse((await layout.readBlob(manifest.config)).toString()) as {
      architecture: string;
      os: string;
      config: { Env: string[] };
      rootfs: { diff_ids: string[] };
    };
    expect(config.os).toBe('linux');
    expect(image.platform).toBe(`linux/${config.architecture}`);
    expect(config.config.Env).toContain('PATH=/bin');
    expect(config.rootfs.diff_ids).toHaveLength(2);

    // unpack the layers as a runtime would (gzip tar, in order) and list them
    const root = join(w.path, 'rootfs');
    await mkdir(root);
    const listing: string[] = [];
    for (const l of manifest.layers) {
      const t = await execa('tar', ['-xzvf', layout.blobPath(l.digest), '-C', root]);
      listing.push(...t.stdout.split('\n'));
      const v = await execa('tar', ['-tzvf', layout.blobPath(l.digest)]);
      // owners 0/0 and mtime 1970 on every entry
      for (const line of v.stdout.split('\n')) expect(line, line).toMatch(/ 0\/0 .* 1970-01-01 00:00 /);
    }
    expect(listing).toEqual(
      expect.arrayContaining(['bin/', 'bin/busybox', 'bin/sh', 'models/', 'models/model.joblib']),
    );
    expect(await readFile(join(root, 'models', 'sub', 'extra.txt'), 'utf8')).toBe('more');

    // KServe 0.15's init container command (CreateModelcarInitContainer), with PATH as the image sets it
    const env = { PATH: join(root, 'bin') };
    const init = await execa(
      join(root, 'bin', 'sh'),
      ['-c', `[ -d ${root}/models ] && [ "$(ls -A ${root}/models)" ] && echo OK`],
      { env, extendEnv: false },
    );
    expect(init.stdout).toBe('OK');
    // and the sidecar's (CreateModelcarContainer), with a short sleep instead of infinity
    await mkdir(join(w.path, 'mnt'));
    await execa(join(root, 'bin', 'sh'), ['-c', `ln -sf ${root}/models ${w.path}/mnt/models && sleep 0`], {
      env,
      extendEnv: false,
    });
    expect(await readFile(join(w.path, 'mnt', 'models', 'model.joblib'), 'utf8')).toBe('joblib bytes');
  });

  it('takes a model file from an http URL (a server on 127.0.0.1) as /models/<file name>', async () => {
    await using w = await tempDir();
    const server = createServer((req, res) => {
      if (req.url === '/iris/model.joblib') res.end('served joblib');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const spec = { ...IRIS, from: `http://127.0.0.1:${port}/iris/model.joblib` };
      const { layout, image } = await build(w.path, spec);
      const manifest = JSON.parse((await layout.readBlob(image.root)).toString()) as Manifest;
      const t = await execa('tar', ['-tzf', layout.blobPath(manifest.layers[1]!.digest)]);
      expect(t.stdout.split('\n')).toEqual(['models/', 'models/model.joblib']);
      // the same bytes from a local file give the same image: the URL is not part of it
      await mkdir(join(w.path, 'local'));
      await writeFile(join(w.path, 'local', 'model.joblib'), 'served joblib');
      const local = await buildModelImage(
        { ...IRIS, from: 'local/model.joblib' },
        { layout, baseDir: w.path, shell: BUSYBOX },
      );
      expect(local.root.digest).toBe(image.root.digest);
      await expect(build(w.path, { ...spec, from: `http://127.0.0.1:${port}/nothing` })).rejects.toMatchObject({
        code: expect.stringMatching(/NOT_FOUND|REGISTRY_ERROR|NETWORK_ERROR/),
      });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses a dynamically linked shell and a model directory that does not exist', async () => {
    await using w = await tempDir();
    const layout = await OciLayout.open(join(w.path, 'layout'));
    await expect(buildModelImage(IRIS, { layout, baseDir: w.path, shell: '/bin/ls' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('dynamically linked'),
    });
    await expect(buildModelImage(IRIS, { layout, baseDir: w.path, shell: BUSYBOX })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(join(w.path, 'model')),
    });
  });
});
