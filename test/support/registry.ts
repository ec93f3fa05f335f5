// A real OCI registry: Debian's docker-registry (distribution 2.8.2, what the sites run), on loopback.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool } from '../../src/tools.ts';
import { freePort, httpOk, startProcess, tempDir } from './process.ts';

export interface TestRegistry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  url: string;
  dataDir: string;
  /** the registry process (benchmarks read its CPU time from /proc) */
  pid: number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface RegistryOptions {
  /** htpasswd file contents (bcrypt) to require Basic auth */
  htpasswd?: string;
  /** token auth: realm URL, service and issuer, and the PEM certificate bundle whose keys sign tokens */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** keep data in this directory instead of a fresh temp one */
  dataDir?: string;
}

/** The registry's config.yml: data in `dataDir`, listening on `host` (also for a registry started elsewhere, e.g. in a network namespace). */
export function registryConfig(dataDir: string, host: string, auth = ''): string {
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dataDir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${host}
  secret: sealift-test-secret
${auth}`;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const bin = requireTool('docker-registry');
  const tmp = await tempDir('sealift-registry-');
  const dataDir = opts.dataDir ?? join(tmp.path, 'data');
  await mkdir(dataDir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = '';
  if (opts.htpasswd) {
    await writeFile(join(tmp.path, 'htpasswd'), opts.htpasswd);
    auth = `auth:\n  htpasswd:\n    realm: sealift-test\n    path: ${join(tmp.path, 'htpasswd')}\n`;
  } else if (opts.token) {
    await writeFile(join(tmp.path, 'token-ca.pem'), opts.token.rootCertBundle);
    auth = `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${opts.token.service}\n    issuer: ${opts.token.issuer}\n    rootcertbundle: ${join(tmp.path, 'token-ca.pem')}\n`;
  }
  const config = registryConfig(dataDir, host, auth);
  const configPath = join(tmp.path, 'config.yml');
  await writeFile(configPath, config);
  const proc = await startProcess(bin, ['serve', configPath], {
    name: 'docker-registry',
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
    ready: () => httpOk(`http://${host}/v2/`),
  });
  const stop = async () => {
    await proc.stop();
    await tmp[Symbol.asyncDispose]();
  };
  return { host, url: `http://${host}`, dataDir, pid: proc.child.pid!, stop, [Symbol.asyncDispose]: stop };
}

/** Bytes the registry still holds in upload sessions of a repository (abandoned partial uploads). */
export async function uploadSessionBytes(registry: Pick<TestRegistry, 'dataDir'>, repository: string): Promise<number> {
  const root = join(registry.dataDir, 'docker/registry/v2/repositories', repository, '_uploads');
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  let total = 0;
  for (const e of entries) if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  return total;
}

/** Every repository the registry stores (a filesystem view, independent of the API). */
export async function storedRepositories(dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'docker/registry/v2/repositories');
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    if (entries.some((e) => e.name === '_manifests')) out.push(rel);
    for (const e of entries)
      if (e.isDirectory() && !e.name.startsWith('_')) await walk(join(d, e.name), rel ? `${rel}/${e.name}` : e.name);
  };
  await walk(root, '');
  return out.sort();
}
