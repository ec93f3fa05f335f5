// Issue 15 class 8 and issue 8 bug 11: bad command-line input is a USAGE error (exit 2) naming
// the flag and the value, found before any work: nothing fetched, pushed or written. The transport
// flags follow one convention in every command (--plain-http [HOST], ...), so the hint of a TLS
// failure names a flag the command takes; an unknown environment is named with the known ones.
import { mkdir, readdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { runSealift } from '../support/cli.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { CLI_ENV, makeImages, seedRegistry, writeBundle } from './load-fixtures.ts';

let work: Awaited<ReturnType<typeof tempDir>>;
let upstream: TestRegistry;
let site: TestRegistry;
let upProxy: FaultProxy;
let siteProxy: FaultProxy;
let bundleTar: string;
let listFile: string;
/** the same images named at the upstream itself (the proxy would turn a TLS handshake into a reset) */
let directList: string;
let stack: string;

// load records checked bundles in a cache: this test process's own, not the user's
const run = (args: string[]) =>
  runSealift(args, { cwd: work.path, timeout: 240_000, env: { SEALIFT_CACHE_DIR: CLI_ENV.SEALIFT_CACHE_DIR } });

/** A USAGE error that names what it should and shows no stack trace. */
function expectUsage(r: { exitCode?: number; stderr: string }, ...texts: string[]): void {
  expect(r.exitCode, r.stderr).toBe(2);
  expect(r.stderr).toContain('error[USAGE]');
  for (const t of texts) expect(r.stderr).toContain(t);
  expect(r.stderr).not.toContain('INTERNAL');
  expect(r.stderr).not.toContain('Invalid URL');
  expect(r.stderr).not.toContain('    at ');
}

beforeAll(async () => {
  work = await tempDir();
  upstream = await startRegistry();
  site = await startRegistry();
  upProxy = await startFaultProxy(upstream.host);
  siteProxy = await startFaultProxy(site.host);
  const images = makeImages(['docker.io/istio/pilot:1.23.2', 'docker.io/istio/proxyv2:1.23.2']);
  await seedRegistry(upstream.host, work.path, images);
  listFile = join(work.path, 'list.txt');
  await writeFile(listFile, images.map((i) => `${upProxy.host}/${i.source.slice('docker.io/'.length)}`).join('\n'));
  directList = join(work.path, 'direct.txt');
  await writeFile(directList, images.map((i) => `${upstream.host}/${i.source.slice('docker.io/'.length)}`).join('\n'));
  bundleTar = await writeBundle(join(work.path, 'stage'), join(work.path, 'site.tar'), images, {
    'helmfile.yaml': 'releases: []\n',
    'charts/istiod/Chart.yaml': 'name: istiod\n',
    'environments/default.yaml': '# sealift site environment\n',
  });
  // a stack of its own with one environment, "site"
  stack = join(work.path, 'stack');
  await mkdir(join(stack, 'environments'), { recursive: true });
  await copyFile(join(PROJECT_ROOT, 'environments', 'default.yaml'), join(stack, 'environments', 'default.yaml'));
  await writeFile(join(stack, 'environments', 'site.yaml'), `registry:\n  host: ${site.host}\n  plainHttp: true\n`);
}, 600_000);

afterAll(async () => {
  await upProxy?.stop();
  await siteProxy?.stop();
  await upstream?.stop();
  await site?.stop();
  await work?.[Symbol.asyncDispose]();
});

const clearRequests = () => {
  upProxy.requests.length = 0;
  siteProxy.requests.length = 0;
};

describe('a registry address that is not HOST[:PORT] is USAGE, before any request', () => {
  it('load --registry with port 99999, mirror --to with port 0, verify --registry with a space, bundle --plain-http with port 70000', async () => {
    clearRequests();
    expectUsage(
      await run(['load', bundleTar, '--registry', '127.0.0.1:99999', '--plain-http']),
      '--registry: "127.0.0.1:99999" is not a registry address (HOST or HOST:PORT, port 1-65535, not 99999)',
    );
    expectUsage(
      await run(['mirror', '--imagelist', listFile, '--to', '127.0.0.1:0', '--plain-http']),
      '--to: "127.0.0.1:0" is not a registry address',
    );
    expectUsage(
      await run(['verify', '-e', 'site', '--stack', stack, '--registry', 'site registry:5000']),
      '--registry: "site registry:5000" is not a registry address',
    );
    const out = join(work.path, 'never');
    expectUsage(
      await run(['bundle', '--imagelist', listFile, '-o', out, '--plain-http', '127.0.0.1:70000']),
      '--plain-http: "127.0.0.1:70000" is not a registry address',
    );
    expect(existsSync(out)).toBe(false);
    expect([...upProxy.requests, ...siteProxy.requests]).toEqual([]);
  });
});

describe('every output path is checked before any work', () => {
  it('bundle -o naming a file, a path under a file, or a name whose .tar is a directory: nothing fetched or written', async () => {
    clearRequests();
    const file = join(work.path, 'a-file');
    await writeFile(file, 'keep me\n');
    const pull = ['bundle', '--imagelist', listFile, '--plain-http', upProxy.host];
    expectUsage(await run([...pull, '-o', file]), `-o ${file}: is a file, not a directory`);
    expectUsage(
      await run([...pull, '-o', join(file, 'bundles')]),
      `${file} is a file, so the directory cannot be made`,
    );
    const out = join(work.path, 'out');
    await mkdir(join(out, 'list.tar'), { recursive: true });
    expectUsage(await run([...pull, '-o', out]), `${join(out, 'list.tar')} is a directory`);
    expect(await readFile(file, 'utf8')).toBe('keep me\n');
    expect(await readdir(out)).toEqual(['list.tar']);
    expect(upProxy.requests).toEqual([]);
  });

  it('load --extract-to naming a file, a dir whose charts/ is a file, or a stack with its own default.yaml: nothing pushed or written', async () => {
    clearRequests();
    const load = ['load', bundleTar, '--registry', siteProxy.host, '--plain-http'];
    const file = join(work.path, 'site-file');
    await writeFile(file, 'x');
    expectUsage(await run([...load, '--extract-to', file]), `--extract-to ${file}: is a file, not a directory`);
    const chartsFile = join(work.path, 'charts-file');
    await mkdir(chartsFile);
    await writeFile(join(chartsFile, 'charts'), 'not a directory');
    expectUsage(
      await run([...load, '--extract-to', chartsFile]),
      `${join(chartsFile, 'charts')} is a file, so the directory cannot be made`,
    );
    expectUsage(
      await run([...load, '--extract-to', stack]),
      `${join(stack, 'environments', 'default.yaml')} is a stack's own default.yaml`,
      'nothing was pushed or written',
    );
    expect(await readdir(chartsFile)).toEqual(['charts']);
    // not one request reached the site registry: the check came before the push
    expect(siteProxy.requests).toEqual([]);
  });
});

describe('the TLS hint names flags the command takes (one transport convention)', () => {
  const hinted = (stderr: string) => /\(--plain-http (\S+)\)/.exec(stderr)?.[1];

  it('load: the hint says --plain-http HOST, and load takes exactly that (and the old bare switch)', async () => {
    const first = await run(['load', bundleTar, '--registry', site.host]);
    expect(first.exitCode, first.stderr).toBe(9);
    expect(hinted(first.stderr)).toBe(site.host);
    const withHost = await run(['load', bundleTar, '--registry', site.host, '--plain-http', site.host]);
    expect(withHost.exitCode, withHost.stderr).toBe(0);
    const bare = await run(['load', bundleTar, '--registry', site.host, '--plain-http']);
    expect(bare.exitCode, bare.stderr).toBe(0);
    expectUsage(
      await run(['load', bundleTar, '--registry', site.host, '--plain-http', upstream.host]),
      `--plain-http ${upstream.host}: ${upstream.host} is not the registry (--registry ${site.host})`,
    );
  });

  it('mirror: the hint names the source, and --plain-http SOURCE is taken as a source flag', async () => {
    const args = ['mirror', '--imagelist', directList, '--to', site.host, '--plain-http'];
    const first = await run(args);
    expect(first.exitCode, first.stderr).not.toBe(0);
    expect(hinted(first.stdout)).toBe(upstream.host);
    const fixed = await run([...args, '--plain-http', upstream.host]);
    expect(fixed.exitCode, fixed.stderr).toBe(0);
    // the spelling from before the convention still works
    const old = await run([...args, '--source-plain-http', upstream.host]);
    expect(old.exitCode, old.stderr).toBe(0);
  });

  it('bundle: the hint names the source, bundle takes --plain-http HOST, and a bare --plain-http asks for the host', async () => {
    const out = join(work.path, 'tls-bundle');
    const first = await run(['bundle', '--imagelist', directList, '-o', out]);
    expect(first.exitCode, first.stderr).not.toBe(0);
    expect(hinted(first.stderr)).toBe(upstream.host);
    expectUsage(
      await run(['bundle', '--imagelist', listFile, '-o', out, '--plain-http']),
      '--plain-http needs the registry it applies to here',
    );
    const fixed = await run(['bundle', '--imagelist', directList, '-o', out, '--plain-http', upstream.host]);
    expect(fixed.exitCode, fixed.stderr).toBe(0);
  });

  it('every copying command documents the same transport and platform flags in --help', async () => {
    for (const cmd of ['bundle', 'load', 'mirror', 'verify']) {
      const help = (await run([cmd, '--help'])).stdout;
      expect(help, cmd).toContain('--plain-http [host]');
      expect(help, cmd).toContain('--insecure [host]');
      expect(help, cmd).toContain('--ca-file <[host=]file>');
    }
    for (const cmd of ['bundle', 'mirror']) {
      const help = (await run([cmd, '--help'])).stdout;
      expect(help, cmd).toContain('--platform <os/arch[/variant]>');
      expect(help, cmd).toContain('--all-platforms');
    }
    expectUsage(
      await run(['mirror', '--imagelist', listFile, '--to', site.host, '--platform', 'linux/amd64', '--all-platforms']),
      '--platform and --all-platforms exclude each other',
    );
  });
});

describe('an unknown environment is named with the known ones', () => {
  it('bundle -e and mirror -e, in the checkout and in a stack of its own: nothing fetched or written', async () => {
    clearRequests();
    const out = join(work.path, 'unknown-env');
    const cases: [string[], string][] = [
      [['bundle', '-e', 'nosuchenv', '-o', out], 'Known environments: airgap, online.'],
      [['mirror', '-e', 'nosuchenv', '--to', siteProxy.host, '--plain-http'], 'Known environments: airgap, online.'],
      [['bundle', '-e', 'nosuchenv', '--stack', stack, '-o', out], 'Known environments: site.'],
      [['mirror', '-e', 'nosuchenv', '--stack', stack, '--to', siteProxy.host], 'Known environments: site.'],
    ];
    for (const [args, known] of cases) {
      const r = await runSealift(args, { timeout: 240_000 });
      expectUsage(r, 'unknown environment "nosuchenv"', known);
      expect(r.stderr).not.toContain('cannot read the image lock');
    }
    expect(existsSync(out)).toBe(false);
    expect([...upProxy.requests, ...siteProxy.requests]).toEqual([]);
  });
});
