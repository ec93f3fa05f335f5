// Where registry credentials come from, in the order a user expects from docker and podman:
// REGISTRY_AUTH_FILE (containers auth.json), then $DOCKER_CONFIG/config.json or
// ~/.docker/config.json: credHelpers[host], auths[host], credsStore. Helpers are run as
// `docker-credential-<name> get` with the server address on stdin, the one docker stores
// under (Docker Hub: `https://index.docker.io/v1/`), bounded in time. Secrets never reach
// events or errors, and neither does anything a helper prints (it may print the secret).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SealiftError } from '../errors.ts';

export interface Credential {
  username?: string;
  password?: string;
  /** an OAuth2 refresh token (docker's identitytoken) */
  identityToken?: string;
  /** where it came from, for messages (never the secret) */
  source: string;
}

export type CredentialLookup = (host: string) => Promise<Credential | undefined>;

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** How long a credential helper may take before it is killed and the lookup fails. */
export const HELPER_TIMEOUT_MS = 15_000;

/** Where docker keeps Docker Hub: its legacy index URL, in auths and for helpers alike. */
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';

function isDockerHub(host: string): boolean {
  return host === 'docker.io' || host === 'registry-1.docker.io' || host === 'index.docker.io';
}

/** Keys a config file may use for a registry: docker.io has its legacy URL key. */
function keysFor(host: string): string[] {
  const keys = [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
  if (isDockerHub(host)) keys.push(DOCKER_HUB_SERVER, 'index.docker.io', 'registry-1.docker.io', 'docker.io');
  return keys;
}

/** The server address a helper is asked for: what `docker login` stored the credential under. */
export function helperServerAddress(host: string): string {
  return isDockerHub(host) ? DOCKER_HUB_SERVER : host;
}

async function readConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (e) {
    throw new SealiftError('CONFIG_INVALID', `${path} is not valid JSON: ${(e as Error).message}`, {
      hint: 'Fix or remove the file; it holds registry credentials (docker login writes it).',
    });
  }
}

function fromAuths(cfg: DockerConfig, host: string, path: string): Credential | undefined {
  if (!cfg.auths) return undefined;
  for (const key of keysFor(host)) {
    const entry = cfg.auths[key];
    if (!entry) continue;
    if (entry.identitytoken)
      return { identityToken: entry.identitytoken, username: entry.username, source: `${path} auths["${key}"]` };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0)
        throw new SealiftError('CONFIG_INVALID', `${path}: auths["${key}"].auth is not base64 of user:password`);
      return { username: decoded.slice(0, i), password: decoded.slice(i + 1), source: `${path} auths["${key}"]` };
    }
    if (entry.username !== undefined)
      return { username: entry.username, password: entry.password ?? '', source: `${path} auths["${key}"]` };
  }
  return undefined;
}

async function runHelper(helper: string, host: string, timeoutMs: number): Promise<Credential | undefined> {
  const bin = `docker-credential-${helper}`;
  const server = helperServerAddress(host);
  const failed = (why: string, code: 'AUTH_FAILED' | 'TOOL_MISSING' = 'AUTH_FAILED') =>
    new SealiftError(code, `credential helper ${bin} ${why} for ${host}`, {
      hint: `Run "echo ${server} | ${bin} get" yourself to see what it says, or remove it from your docker config.`,
      details: { helper: bin, registry: host },
    });
  return new Promise((resolve, reject) => {
    // its own process group: on a timeout the helper and whatever it started are killed together
    const child = spawn(bin, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout.destroy();
      child.stderr.destroy();
      reject(failed(`did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    // bounded: a helper's output is read for its answer only, never shown
    child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(0, 1 << 20)));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(0, 1 << 16)));
    child.stdin.on('error', () => undefined); // a helper that exits without reading its stdin
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(failed(`could not be run (${e.code ?? 'spawn failed'})`, 'TOOL_MISSING'));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return;
      if (code !== 0) {
        // helpers say "credentials not found" with a non-zero exit: that is anonymous, not an error
        if (/not found/i.test(out + err)) return resolve(undefined);
        return reject(
          failed(
            `failed (${signal ? `signal ${signal}` : `exit ${code}`}; its output is not shown, it may hold secrets)`,
          ),
        );
      }
      try {
        const j = JSON.parse(out) as { Username?: string; Secret?: string };
        if (j.Username === '<token>') resolve({ identityToken: j.Secret, source: bin });
        else resolve({ username: j.Username, password: j.Secret, source: bin });
      } catch {
        reject(failed('printed something that is not JSON'));
      }
    });
    child.stdin.end(server);
  });
}

function helperFor(cfg: DockerConfig, host: string): string | undefined {
  for (const key of keysFor(host)) {
    const helper = cfg.credHelpers?.[key];
    if (helper) return helper;
  }
  return undefined;
}

/** The default lookup: REGISTRY_AUTH_FILE, then the docker config. `env` is for tests. */
export function dockerCredentials(
  env: NodeJS.ProcessEnv = process.env,
  opts: { helperTimeoutMs?: number } = {},
): CredentialLookup {
  const timeoutMs = opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS;
  return async (host) => {
    const files: string[] = [];
    if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
    files.push(join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker'), 'config.json'));
    for (const path of files) {
      const cfg = await readConfig(path);
      if (!cfg) continue;
      const helper = helperFor(cfg, host);
      if (helper) return runHelper(helper, host, timeoutMs);
      const fromFile = fromAuths(cfg, host, path);
      if (fromFile) return fromFile;
      if (cfg.credsStore) {
        const c = await runHelper(cfg.credsStore, host, timeoutMs);
        if (c) return c;
      }
    }
    return undefined;
  };
}

/** Fixed credentials per host (flags, tests), falling back to another lookup. */
export function staticCredentials(
  map: Record<string, { username: string; password: string }>,
  fallback?: CredentialLookup,
): CredentialLookup {
  return async (host) => {
    const c = map[host];
    if (c) return { ...c, source: 'command line' };
    return fallback?.(host);
  };
}
