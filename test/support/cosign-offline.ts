// The real cosign (built and pinned by scripts/setup.sh into .tools/bin), run so that it can reach
// nothing but loopback: every non-loopback request goes to a proxy address where nothing listens
// (Go never proxies loopback, so the test registries are reached directly), TUF_ROOT and HOME
// are the test's own directory (cosign reaches for the public-good TUF root even with --key), and
// key pairs carry an empty COSIGN_PASSWORD.
import { join } from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT } from '../../src/tools.ts';

export const COSIGN_BIN = process.env.COSIGN_BIN ?? join(PROJECT_ROOT, '.tools', 'bin', 'cosign');

/** A trusted root without any authority: what cosign wants beside --key to read Sigstore bundles offline. */
export const EMPTY_TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n';

export function cosignEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: home,
    TUF_ROOT: join(home, 'tuf'),
    DOCKER_CONFIG: join(home, 'docker'),
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    COSIGN_PASSWORD: '',
    COSIGN_EXPERIMENTAL: '1',
  };
}

/** Runs cosign in `home` (its cwd and HOME); never throws: tests assert the exit code. */
export function cosign(home: string, args: string[]) {
  return execa(COSIGN_BIN, args, { cwd: home, env: cosignEnv(home), extendEnv: false, reject: false, stdin: 'ignore' });
}
