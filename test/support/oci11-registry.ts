// A registry with the OCI 1.1 referrers API (test/support/oci11-registry/main.go:
// go-containerregistry's in-memory registry, pinned by its go.mod and go.sum), built once per
// source hash into node_modules/.cache and started on loopback. The sites' registry
// (docker-registry 2.8.2, registry.ts) has no referrers API; this one is the source that has it.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { freePort, httpOk, startProcess } from './process.ts';

const SOURCE = join(PROJECT_ROOT, 'test', 'support', 'oci11-registry');

/** Builds the registry (CGO off, -trimpath) unless this source's build is there; returns the binary. */
export async function buildOci11Registry(): Promise<string> {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) h.update(await readFile(join(SOURCE, f)));
  const dir = join(PROJECT_ROOT, 'node_modules', '.cache', 'sealift-test');
  const bin = join(dir, `oci11-registry-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  await mkdir(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  await execa('go', ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: SOURCE,
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
    stdin: 'ignore',
  });
  await rename(tmp, bin);
  return bin;
}

export interface Oci11Registry {
  host: string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startOci11Registry(): Promise<Oci11Registry> {
  const bin = await buildOci11Registry();
  const host = `127.0.0.1:${await freePort()}`;
  const proc = await startProcess(bin, ['-addr', host], {
    name: 'oci11-registry',
    ready: () => httpOk(`http://${host}/v2/`),
  });
  return { host, stop: proc.stop, [Symbol.asyncDispose]: proc.stop };
}
