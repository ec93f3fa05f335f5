// The demo: the whole pipeline in a sandbox on 127.0.0.1, ending in a verification.
//
//   internet side: chart servers holding the real fixture charts and Knative release files, and an
//                  "upstream" registry seeded with small generated images under the stack's real
//                  names (docker.io/..., quay.io/..., gcr.io/... each under its own path prefix,
//                  reached through sealift's --mirror, as a corporate mirror would be)
//   site side:     an empty "site" registry standing in for 10.61.3.31:35000
//
// Steps: images scan (find the digest-pinned Knative images) -> seed -> generate -> images ->
// bundle -> bundle verify -> stop every upstream server -> load --extract-to (twice) ->
// the site half with the carried tools only: the loader out of the tar (one tar command) ->
// load --extract-to (the site files, bin/{sealift,helm,helmfile}, the helm-diff plugin, env.sh) ->
// load again with the installed sealift -> the carried helmfile + helm render the site dir ->
// the carried sealift check + size (preflight, offline) ->
// the carried sealift verify --stack <site dir> --manifests --registry (the environment and lock
// the bundle carried, no checkout) -> containerd pulls through hosts.toml.
//
// The real Knative release files pin their images by digest. Generated images cannot have those
// digests, so the demo serves copies of the release files in which each pinned digest is replaced by
// the digest of the generated image seeded for it, and says so in the report.
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { dump as dumpYaml, load as loadYaml, loadAll } from 'js-yaml';
import { normalizeImageReference } from '../src/oci/reference.ts';
import { PROJECT_ROOT } from '../src/tools.ts';
import { FIXTURES, startChartServers } from '../test/support/chart-servers.ts';
import { seedImages, type ImageSpec } from '../test/support/images.ts';
import { startRegistry } from '../test/support/registry.ts';
import { startContainerd } from '../test/support/containerd.ts';

const SANDBOX = join(PROJECT_ROOT, '.sandbox', 'demo');
const started = Date.now();
const timings: [string, number][] = [];

function step(title: string): () => void {
  const t0 = Date.now();
  console.log(`\n==> ${title}`);
  return () => timings.push([title, Date.now() - t0]);
}

/** The site: only what the bundle carried (DIR/bin, DIR/helm-plugins) and the host's basic commands. */
interface Site {
  /** the carried sealift executable */
  sealift: string;
  env: Record<string, string>;
}

async function sealift(
  args: string[],
  opts: { json?: boolean; allowFail?: boolean; site?: Site; stdinFile?: string } = {},
): Promise<unknown> {
  const argv = [...args, ...(opts.json ? ['--json'] : [])];
  const shown = args.map((a) => (a.startsWith(SANDBOX) ? relative(PROJECT_ROOT, a) : a)).join(' ');
  const piped = opts.stdinFile ? `cat ${relative(PROJECT_ROOT, opts.stdinFile)} | ` : '';
  console.log(opts.site ? `site$ ${piped}sealift ${shown}` : `$ ${piped}sealift ${shown}`);
  const res = await execa(
    opts.site ? opts.site.sealift : process.execPath,
    opts.site ? argv : [join(PROJECT_ROOT, 'bin', 'sealift.js'), ...argv],
    {
      cwd: opts.site ? SANDBOX : PROJECT_ROOT,
      reject: false,
      ...(opts.stdinFile ? { inputFile: opts.stdinFile } : {}),
      stdout: opts.json ? 'pipe' : 'inherit',
      stderr: opts.json ? 'pipe' : 'inherit',
      ...(opts.site ? { env: opts.site.env, extendEnv: false } : { env: { CI: 'true' } }),
    },
  );
  if (res.exitCode !== 0 && !opts.allowFail) {
    if (opts.json) console.error(`${res.stdout}\n${res.stderr}`);
    throw new Error(`sealift ${args[0]} failed with exit code ${res.exitCode}`);
  }
  return opts.json ? JSON.parse(String(res.stdout)) : undefined;
}

/** Every `image:` reference in a set of rendered manifests (parsed, not grepped). */
function podImages(manifests: string): string[] {
  const out = new Set<string>();
  const walk = (v: unknown, key?: string): void => {
    if (Array.isArray(v)) v.forEach((x) => walk(x));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (key === 'image' && typeof v === 'string' && v !== 'auto') out.add(v);
  };
  for (const doc of loadAll(manifests)) walk(doc);
  return [...out].sort();
}

async function main(): Promise<void> {
  await rm(SANDBOX, { recursive: true, force: true });
  await mkdir(SANDBOX, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  const report: string[] = [];
  try {
    // ---------------------------------------------------------------- internet side
    let done = step('find the digest-pinned images in the Knative release files');
    const scan = (await sealift(['images', 'scan', join(FIXTURES, 'releases')], { json: true })) as {
      images: { reference: string }[];
    };
    const pinned = scan.images.map((i) => normalizeImageReference(i.reference)).filter((r) => r.digest);
    console.log(`${pinned.length} images pinned by digest`);
    done();

    done = step('start the "upstream" registry and seed generated images under the real names');
    const upstream = await startRegistry();
    cleanups.push(() => upstream.stop());
    const site = await startRegistry();
    cleanups.push(() => site.stop());
    // The airgap list names every image the stack pulls; the committed lock is the source of truth.
    const lock = JSON.parse(await readFile(join(PROJECT_ROOT, 'imagelists', 'airgap.lock.json'), 'utf8')) as {
      images: { reference: string }[];
    };
    const byHost = new Map<string, ImageSpec[]>();
    const pinnedTag = new Map<string, string>(); // repository -> demo tag for digest-pinned images
    for (const { reference } of lock.images) {
      const ref = normalizeImageReference(reference);
      const tag = ref.tag ?? 'demo';
      if (ref.digest) pinnedTag.set(`${ref.registry}/${ref.repository}`, tag);
      const specs = byHost.get(ref.registry) ?? [];
      specs.push({ ref: `${ref.repository}:${tag}`, base: 'demo-base', layers: [48 << 10, 16 << 10] });
      byHost.set(ref.registry, specs);
    }
    const digestOf = new Map<string, string>();
    let seededCount = 0;
    for (const [host, specs] of byHost) {
      const seeded = await seedImages(`${upstream.host}/${host}`, specs, { workDir: SANDBOX });
      for (const s of seeded)
        digestOf.set(`${host}/${s.repository.replace(/^library\//, 'library/')}:${s.tag}`, s.digest);
      seededCount += seeded.length;
    }
    console.log(`seeded ${seededCount} images into ${upstream.host} (${byHost.size} upstream registries)`);
    done();

    done = step('serve the release files with the pinned digests replaced by the seeded ones');
    const releasesDir = join(SANDBOX, 'releases');
    await cp(join(FIXTURES, 'releases'), releasesDir, { recursive: true });
    let replaced = 0;
    for (const file of await readdir(releasesDir, { recursive: true })) {
      if (!file.endsWith('.yaml')) continue;
      const p = join(releasesDir, file);
      let text = await readFile(p, 'utf8');
      for (const ref of pinned) {
        const name = `${ref.registry}/${ref.repository}`;
        const seededDigest = digestOf.get(`${name}:${pinnedTag.get(name) ?? 'demo'}`);
        if (!seededDigest || !text.includes(ref.digest!)) continue;
        text = text.split(ref.digest!).join(seededDigest);
        replaced++;
      }
      await writeFile(p, text);
    }
    console.log(`${replaced} pinned digests replaced`);
    const servers = await startChartServers({ releasesDir });
    cleanups.push(() => servers.stop());
    done();

    // A sandbox copy of the stack whose airgap environment fetches from the loopback servers and
    // names the site registry (standing in for 10.61.3.31:35000).
    const stack = join(SANDBOX, 'stack');
    await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
    await cp(join(PROJECT_ROOT, 'templates'), join(stack, 'templates'), { recursive: true });
    // the stack's own charts (platform-extras) and the smoke test's model files
    for (const d of ['charts', 'models']) await cp(join(PROJECT_ROOT, d), join(stack, d), { recursive: true });
    const airgapFile = join(stack, 'environments', 'airgap.yaml');
    const airgap = (loadYaml(await readFile(airgapFile, 'utf8')) ?? {}) as Record<string, unknown>;
    const { sources } = (loadYaml(await servers.sourcesOverlayYaml()) ?? {}) as { sources: unknown };
    airgap.sources = sources;
    airgap.registry = { host: site.host, plainHttp: true };
    await writeFile(airgapFile, `# demo: sources on loopback, the site registry on loopback\n${dumpYaml(airgap)}`);
    const mirrors = [...byHost.keys()].flatMap((h) => ['--mirror', `${h}=${upstream.host}/${h}`]);

    done = step('generate the helmfile and values for every environment');
    await sealift(['generate', '--all', '--stack', stack, '-o', join(SANDBOX, 'generated')]);
    done();

    done = step('images: render every chart and resolve every image (hidden ones included)');
    await sealift(['images', '-e', 'airgap', '--stack', stack]);
    done();

    done = step('bundle: pull images digest-exact and the charts into one verified tar, signed');
    const bundleOut = join(SANDBOX, 'bundles');
    // the release manager's key (ECDSA P-256, PEM): the public half goes to the site out of band
    const signKey = join(SANDBOX, 'bundle.key');
    const verifyKey = join(SANDBOX, 'bundle.pub');
    await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', signKey]);
    await execa('openssl', ['pkey', '-in', signKey, '-pubout', '-out', verifyKey]);
    await sealift([
      'bundle',
      '-e',
      'airgap',
      '--stack',
      stack,
      '-o',
      bundleOut,
      '--plain-http',
      upstream.host,
      ...mirrors,
      '--sign-key',
      signKey,
    ]);
    const bundleFile = (await readdir(bundleOut)).find((f) => f.endsWith('.tar'));
    if (!bundleFile) throw new Error(`no bundle tar in ${bundleOut}`);
    const bundlePath = join(bundleOut, bundleFile);
    await sealift(['bundle', 'verify', bundlePath, '--verify-key', verifyKey]);
    done();

    done = step('cross the air gap: stop every upstream server');
    await servers.stop();
    await upstream.stop();
    console.log('chart servers, file server and upstream registry stopped');
    done();

    // ---------------------------------------------------------------- site side
    // From here on only what the bundle carried runs: no node, no checkout, no .tools/.
    done = step('the loader out of the bundle: its first tar entry, one tar command');
    const atSite = join(SANDBOX, 'at-site');
    await rm(atSite, { recursive: true, force: true });
    await mkdir(join(atSite, 'home'), { recursive: true });
    console.log(`site$ tar -xf ${relative(PROJECT_ROOT, bundlePath)} --occurrence=1 bin/linux-amd64/sealift`);
    await execa('tar', ['-xf', bundlePath, '--occurrence=1', 'bin/linux-amd64/sealift'], { cwd: atSite });
    const siteDir = join(SANDBOX, 'site');
    // what env.sh (written by load) sets, over a bare host's PATH
    const siteEnv = {
      PATH: `${join(siteDir, 'bin')}:/usr/bin:/bin`,
      HELM_PLUGINS: join(siteDir, 'helm-plugins'),
      HELM_BIN: join(siteDir, 'bin', 'helm'),
      HOME: join(atSite, 'home'),
      CI: 'true',
    };
    const loader: Site = { sealift: join(atSite, 'bin', 'linux-amd64', 'sealift'), env: siteEnv };
    done();

    done = step(
      'load: check the signature, push the bundle into the site registry, extract the site files and the carried tools',
    );
    await sealift(
      ['load', bundlePath, '--registry', site.host, '--plain-http', '--extract-to', siteDir, '--verify-key', verifyKey],
      { site: loader },
    );
    const receipt = JSON.parse(await readFile(join(siteDir, 'sealift-receipt.json'), 'utf8')) as {
      repositories: Record<string, unknown>;
    };
    console.log(
      `site receipt (for the next \`bundle --since\`): ${Object.keys(receipt.repositories).length} repositories, in site/sealift-receipt.json`,
    );
    const carried: Site = { sealift: join(siteDir, 'bin', 'sealift'), env: siteEnv };
    console.log((await readFile(join(siteDir, 'env.sh'), 'utf8')).trim());
    done();

    done = step(
      'load again from a pipe with the installed sealift: the registry has everything, nothing is transferred',
    );
    const reload = (await sealift(['load', '-', '--registry', site.host, '--plain-http', '--verify-key', verifyKey], {
      json: true,
      site: carried,
      stdinFile: bundlePath,
    })) as {
      stats: { blobsPushed: number; blobsPresent: number };
      origin: { signed: boolean; verified: boolean };
    };
    console.log(`blobs uploaded: ${reload.stats.blobsPushed}, already present: ${reload.stats.blobsPresent}`);
    done();

    done = step('the carried helmfile + helm render the site dir, with no upstream server running');
    const helmVersion = await execa(join(siteDir, 'bin', 'helm'), ['version', '--short'], {
      env: siteEnv,
      extendEnv: false,
    });
    const diffVersion = await execa(join(siteDir, 'bin', 'helm'), ['diff', 'version'], {
      env: siteEnv,
      extendEnv: false,
    });
    console.log(`site$ helm version --short: ${helmVersion.stdout}; helm diff version: ${diffVersion.stdout}`);
    const rendered = await execa(
      join(siteDir, 'bin', 'helmfile'),
      ['-e', 'airgap', 'template', '--include-crds', '--skip-deps'],
      {
        cwd: siteDir,
        env: siteEnv,
        extendEnv: false,
        reject: false,
      },
    );
    if (rendered.exitCode !== 0) throw new Error(`helmfile template failed in ${siteDir}:\n${rendered.stderr}`);
    const renderedFile = join(SANDBOX, 'site-rendered.yaml');
    await writeFile(renderedFile, String(rendered.stdout));
    const images = podImages(String(rendered.stdout));
    const outside = images.filter((image) => normalizeImageReference(image).registry !== site.host);
    console.log(
      `${images.length} images in the rendered pod specs; ${outside.length} name a registry other than ${site.host}`,
    );
    for (const o of outside) console.log(`  not in the site registry: ${o}`);
    done();

    // Preflight before `helmfile apply`, at the site and offline: check reads the site dir's charts/,
    // size sums what the site's own render requests against the carried environment's cluster block.
    done = step('preflight at the site: check (compatibility) and size (resources), offline');
    const checked = (await sealift(['check', '-e', 'airgap', '--stack', siteDir], { json: true, site: carried })) as {
      ok: boolean;
      warnings: number;
      findings: { level: string; message: string }[];
    };
    for (const f of checked.findings.filter((x) => x.level === 'warn')) console.log(`warning: ${f.message}`);
    const sized = (await sealift(['size', '-e', 'airgap', '--stack', siteDir, '--manifests', renderedFile], {
      json: true,
      site: carried,
    })) as {
      totals: { pods: number; requests: { cpu: number; memory: number } };
      fit?: { verdict: string };
      containersWithoutRequests: unknown[];
    };
    console.log(
      `check: ${checked.findings.length} checks, ${checked.warnings} warnings; size: ${sized.totals.pods} pods request ${sized.totals.requests.cpu.toFixed(2)} CPU, ${(sized.totals.requests.memory / 2 ** 30).toFixed(1)} GiB (${sized.fit?.verdict ?? 'no cluster block'})`,
    );
    done();

    // At the site nothing upstream answers and there is no checkout: verify checks what the site's
    // own helmfile rendered, against the environment and lock the bundle carried into the site dir.
    done = step('verify: the site render pulls only from the site registry, and the registry has it all');
    const verified = (await sealift(
      ['verify', '-e', 'airgap', '--stack', siteDir, '--manifests', renderedFile, '--registry'],
      { json: true, site: carried },
    )) as {
      ok: boolean;
      checked: number;
      lock: string;
      knobless: unknown[];
      registryChecks?: { status: string }[];
    };
    const inRegistry = verified.registryChecks?.filter((c) => c.status === 'present').length ?? 0;
    console.log(
      `verify: ${verified.checked} images checked against ${relative(PROJECT_ROOT, verified.lock)}, ${inRegistry} found in ${site.host}`,
    );
    done();

    done = step('a node pulls by upstream name: containerd with the generated hosts.toml');
    const containerd = await startContainerd();
    cleanups.push(() => containerd.stop());
    const hostsDir = join(siteDir, 'containerd', 'certs.d');
    const nodePulls = [
      ...pinned
        .map(
          (r) =>
            `${r.registry}/${r.repository}@${digestOf.get(`${r.registry}/${r.repository}:${pinnedTag.get(`${r.registry}/${r.repository}`) ?? 'demo'}`)}`,
        )
        .slice(0, 2),
      'docker.io/istio/proxyv2:1.23.2',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
    ];
    for (const ref of nodePulls) {
      await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--hosts-dir', hostsDir, ref]);
      console.log(`ctr pulled ${ref}`);
    }
    done();

    report.push(
      '',
      '==> report',
      `images seeded upstream:          ${seededCount} (Knative pins replaced: ${replaced})`,
      `bundle:                          ${relative(PROJECT_ROOT, bundlePath)}`,
      `bundle signature:                ${reload.origin.verified ? 'verified' : 'NOT verified'} at the site with bundle.pub (load --verify-key, twice)`,
      `site registry:                   ${site.host}; a second load, from a pipe, uploaded ${reload.stats.blobsPushed} blobs`,
      `containerd (node) pulls:         ${nodePulls.length} by upstream name through hosts.toml`,
      `verify -e airgap --stack site:   ${verified.ok ? 'ok' : 'FAILED'} (${verified.checked} images rendered: ${inRegistry} present in the site registry, ${verified.knobless.length} knob-less ones keep their upstream names, warned)`,
      `helmfile template (site, offline): ${images.length} pod images, ${outside.length} outside the site registry`,
      `site tools (carried, linux/amd64): sealift, helm (${helmVersion.stdout}), helmfile, helm-diff (${diffVersion.stdout}); nothing from the checkout ran at the site`,
      `check / size (site, offline):    ${checked.ok ? 'ok' : 'FAILED'}, ${checked.warnings} warnings; ${sized.totals.requests.cpu.toFixed(2)} CPU requested, ${sized.fit?.verdict ?? 'no fit verdict'}, ${sized.containersWithoutRequests.length} containers without requests`,
      `total time:                      ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ...timings.map(([t, ms]) => `  ${(ms / 1000).toFixed(1).padStart(6)} s  ${t}`),
    );
    console.log(report.join('\n'));
    if (
      !verified.ok ||
      !checked.ok ||
      sized.fit?.verdict === 'does-not-fit' ||
      outside.length > 0 ||
      !reload.origin.verified ||
      reload.stats.blobsPushed !== 0
    )
      process.exitCode = 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

await main();
