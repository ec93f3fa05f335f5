// A registry with the OCI 1.1 referrers API (test/support/oci11-registry/main.go:
// go-containerregistry's in-memory registry, pinned by its go.mod and go.sum), built by
// scripts/setup.sh into .tools/bin and started on loopback. The sites' registry (docker-registry
// 2.8.2, registry.ts) has no referrers API; this one is the source that has it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TOOLS_DIR } from '../../src/tools.ts';
import { freePort, httpOk, startProcess } from './process.ts';

/** The binary the set-up built; a clear failure when the set-up has not run. */
export function oci11RegistryBinary(): string {
  const bin = join(TOOLS_DIR, 'bin', 'oci11-registry');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run bash scripts/setup.sh (it builds the test registry)`);
  return bin;
}

export interface Oci11Registry {
  host: string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startOci11Registry(): Promise<Oci11Registry> {
  const bin = oci11RegistryBinary();
  const host = `127.0.0.1:${await freePort()}`;
  const proc = await startProcess(bin, ['-addr', host], {
    name: 'oci11-registry',
    ready: () => httpOk(`http://${host}/v2/`),
  });
  return { host, stop: proc.stop, [Symbol.asyncDispose]: proc.stop };
}
