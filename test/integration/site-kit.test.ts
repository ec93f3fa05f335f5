// The bundle alone is enough at the site (issue 9). A bundle of the real stack carries sealift
// (one executable), helm, helmfile and helm-diff right after checksums.sha256 and bundle.json; then, inside a network
// namespace holding only `lo` (`unshare -n`) and with a PATH of the extracted tools and a handful
// of basic host commands (no node, no checkout, no .tools): the carried sealift comes out of the
// tar with one `tar` command, loads the bundle into a registry started inside that namespace and
// installs the site kit; the carried helmfile + helm render the site dir, `helm diff` works
// through DIR/helm-plugins, and the carried `sealift verify --registry` passes. Any tool missing
// from the bundle makes the script fail (nothing else on PATH provides it).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { openBundleArchive } from '../../src/bundle-format/index.ts';
import { requireTool } from '../../src/tools.ts';
import { makeAirgapBundle } from '../support/airgap-bundle.ts';
import { freePort, tempDir } from '../support/process.ts';
import { registryConfig } from '../support/registry.ts';

const TOOLS = ['sealift', 'helm', 'helmfile', 'helm-diff'];
/** what a bare site host has, besides the bundle: a shell and the archive tools helmfile's hooks use */
const BASIC_COMMANDS = ['sh', 'bash', 'tar', 'gzip', 'mkdir', 'rm', 'mv', 'cp', 'cat', 'ls', 'dirname', 'sleep'];

function firstTarEntries(tar: string, n: number): string[] {
  return execFileSync('tar', ['-tf', tar], { encoding: 'utf8', maxBuffer: 1 << 26 })
    .split('\n')
    .slice(0, n);
}

describe('the site needs nothing but the bundle', () => {
  it('carried sealift, helm, helmfile and helm-diff load, render, diff and verify in a network namespace with only lo', async () => {
    await using work = await tempDir();
    // the site registry's address: a port in the namespace to come (the overlay only names it)
    const siteHost = `127.0.0.1:${await freePort()}`;
    const { tar } = await makeAirgapBundle({ workDir: work.path, siteHost, scheme: 'host-swap' });

    // checksums.sha256 and bundle.json first (bundleTarOrder), then the tools; listed in both
    expect(firstTarEntries(tar, 6)).toEqual([
      'checksums.sha256',
      'bundle.json',
      ...TOOLS.map((t) => `bin/linux-amd64/${t}`),
    ]);
    const archive = await openBundleArchive(tar);
    const index = JSON.parse((await archive.readSmall('bundle.json')).toString('utf8')) as {
      siteTools: { platforms: string[]; files: { path: string; sha256: string; size: number }[] };
    };
    const sums = (await archive.readSmall('checksums.sha256')).toString('utf8');
    const helmEntry = archive.lookup('bin/linux-amd64/helm')!;
    await archive.close();
    expect(index.siteTools.platforms).toEqual(['linux/amd64']);
    expect(index.siteTools.files.map((f) => f.path)).toEqual(TOOLS.map((t) => `bin/linux-amd64/${t}`));
    for (const f of index.siteTools.files) expect(sums).toContain(`${f.sha256}  ${f.path}\n`);

    // the site: basic commands only, and the registry the namespace starts
    const basic = join(work.path, 'basic-bin');
    await mkdir(basic);
    for (const c of BASIC_COMMANDS) {
      const at = ['/usr/bin', '/bin'].map((d) => join(d, c)).find((p) => existsSync(p));
      await symlink(at!, join(basic, c));
    }
    const regData = join(work.path, 'site-registry');
    await mkdir(regData);
    await writeFile(join(work.path, 'registry.yml'), registryConfig(regData, siteHost));
    const siteRoot = join(work.path, 'at-site');
    const dir = join(siteRoot, 'site');
    await mkdir(join(siteRoot, 'home'), { recursive: true });
    const port = siteHost.split(':')[1]!;
    const script = `set -eu
ip link set lo up
OTEL_TRACES_EXPORTER=none ${requireTool('docker-registry')} serve ${join(work.path, 'registry.yml')} > ${join(work.path, 'registry.log')} 2>&1 &
REG=$!
trap 'kill $REG' EXIT
for i in $(seq 1 200); do if (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; then break; fi; sleep 0.05; done
export PATH=${basic}
if command -v node >/dev/null 2>&1; then echo "node is on the site PATH" >&2; exit 90; fi
cd ${siteRoot}
# the README's one command: the loader out of the bundle, reading only its first entries
tar -xf ${tar} --occurrence=1 bin/linux-amd64/sealift
./bin/linux-amd64/sealift --version
./bin/linux-amd64/sealift load ${tar} --registry ${siteHost} --plain-http --extract-to ${dir}
. ${dir}/env.sh
echo "sealift=$(command -v sealift) helm=$(command -v helm) helmfile=$(command -v helmfile)"
helm version --short
helm diff version
(cd ${dir} && helmfile -e airgap template --skip-deps > ${dir}/rendered.yaml)
sealift verify -e airgap --stack ${dir} --manifests ${dir}/rendered.yaml --registry --json > ${siteRoot}/verify.json
`;
    await writeFile(join(work.path, 'site.sh'), script);
    const env = { PATH: basic, HOME: join(siteRoot, 'home'), CI: 'true' };
    // the host's PATH only until the namespace's registry is up; the script narrows it to `basic`
    const ran = await execa('/usr/bin/unshare', ['-n', '/bin/bash', join(work.path, 'site.sh')], {
      env: { ...env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      extendEnv: false,
      reject: false,
      timeout: 600_000,
    });
    const log = `${ran.stdout.slice(-3000)}\n${ran.stderr.slice(-5000)}`;
    expect(ran.exitCode, log).toBe(0);
    expect(ran.stdout).toMatch(/^sealift \d+\.\d+\.\d+ \(commit [0-9a-f]{40}(-dirty)?, single executable\)$/m);
    expect(ran.stdout).toContain(`sealift=${dir}/bin/sealift helm=${dir}/bin/helm helmfile=${dir}/bin/helmfile`);
    expect(ran.stdout).toMatch(/^v3\.19\.0\+g3d8990f$/m);
    expect(ran.stdout).toMatch(/^3\.9\.14$/m);
    const verify = JSON.parse(await readFile(join(siteRoot, 'verify.json'), 'utf8')) as {
      ok: boolean;
      registry: string;
      offenders: unknown[];
      registryChecks: { status: string }[];
    };
    expect(verify.ok).toBe(true);
    expect(verify.registry).toBe(siteHost);
    expect(verify.offenders).toEqual([]);
    expect(verify.registryChecks.length).toBeGreaterThan(20);
    expect(verify.registryChecks.filter((c) => c.status !== 'present')).toEqual([]);
    // the runbook names the exact commands, and env.sh points helmfile's hooks at the same helm
    const runbook = await readFile(join(dir, 'README.md'), 'utf8');
    expect(runbook).toContain(`. ${dir}/env.sh`);
    expect(runbook).toContain(`sealift load ${tar} --registry ${siteHost} --plain-http --extract-to ${dir}`);
    expect(runbook).toContain(`sealift verify -e airgap --stack ${dir}`);
    expect(await readFile(join(dir, 'env.sh'), 'utf8')).toContain('export HELM_BIN="$SEALIFT_SITE_DIR/bin/helm"');

    // a site of another platform: refused before the registry is touched, naming what the bundle has
    const sealift = join(dir, 'bin', 'sealift');
    const atSite = (args: string[]) =>
      execa(sealift, args, {
        env: { ...env, SEALIFT_CACHE_DIR: join(siteRoot, 'cache') },
        extendEnv: false,
        reject: false,
      });
    const loadAt = (target: string, ...more: string[]) =>
      atSite(['load', tar, '--registry', siteHost, '--plain-http', '--extract-to', join(siteRoot, target), ...more]);
    const other = await loadAt('arm', '--site-platform', 'linux/arm64');
    expect(other.exitCode, other.stderr).toBe(6);
    expect(other.stderr).toContain("carries site tools for linux/amd64, not for this site's linux/arm64");
    expect(other.stderr).toContain('--site-platform linux/amd64,linux/arm64');

    // a corrupted carried tool is refused by the checksums like any file (the carried sealift's
    // bundle verify: load reads the bundle once, as it pushes, so it needs the registry, which is
    // gone with its namespace by now)
    const fh = await open(tar, 'r+');
    await fh.write(Buffer.from('sealift'), 0, 7, helmEntry.offset + 4096);
    await fh.close();
    const bad = await atSite(['bundle', 'verify', tar]);
    expect(bad.exitCode, bad.stderr).toBe(10);
    expect(bad.stderr).toContain('bin/linux-amd64/helm: sha256 is');
  }, 900_000);
});
