// `load --extract-to DIR` installs the tools the bundle carried for the site's platform, so the
// site needs nothing else (no node, npm, Go or network):
//   DIR/bin/{sealift,helm,helmfile}      executable, each checked against checksums.sha256 on the way out
//   DIR/helm-plugins/diff/               helm-diff as a working helm plugin (plugin.yaml + bin/diff)
//   DIR/env.sh                           puts them first: PATH, HELM_PLUGINS, HELM_BIN (the helmfile hooks' helm)
//   DIR/README.md                        the site runbook: the exact commands, in order
// The platform is this machine's unless --site-platform says otherwise; a bundle without it is
// refused before the registry is touched, naming the platforms it has. An incremental bundle
// whose tools did not change carries none: the base's are checked in the site dir instead.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SealiftError } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { extractOne } from './site-files.ts';
import {
  hostPlatform,
  parseSiteToolPath,
  siteToolPath,
  SITE_PLATFORMS,
  SITE_TOOLS,
  type BundleArchive,
  type BundleBase,
  type SiteTool,
} from '../bundle-format/index.ts';

export interface SiteToolsPlan {
  platform: string;
  /** false: the bundle carries no tools at all (made with --no-site-tools, or by an older sealift) */
  carried: boolean;
  /** every platform the bundle carries tools for */
  available: string[];
}

export interface SiteToolsResult {
  platform: string;
  installed: string[];
  envFile: string;
  runbook: string;
}

/** Which tools to install, decided before the registry is touched: a missing platform or tool is refused here. */
export function planSiteTools(archive: BundleArchive, bundleFile: string, platform?: string): SiteToolsPlan {
  const want = platform ?? hostPlatform();
  if (platform !== undefined && !(SITE_PLATFORMS as readonly string[]).includes(platform))
    throw new SealiftError(
      'USAGE',
      `--site-platform ${platform}: sealift carries site tools for ${SITE_PLATFORMS.join(' and ')} only`,
      {
        hint: `Give one of ${SITE_PLATFORMS.join(', ')}.`,
      },
    );
  const byPlatform = new Map<string, Set<string>>();
  for (const e of archive.entries.values()) {
    const t = e.type === 'file' ? parseSiteToolPath(e.path) : undefined;
    if (t) byPlatform.set(t.platform, (byPlatform.get(t.platform) ?? new Set()).add(t.tool));
  }
  const available = [...byPlatform.keys()].sort();
  if (available.length === 0) return { platform: want, carried: false, available };
  const have = byPlatform.get(want);
  if (!have)
    throw new SealiftError(
      'TOOL_MISSING',
      `${archive.location} carries site tools for ${available.join(', ')}, not for this site's ${want}`,
      {
        hint: `Make the bundle with --site-platform ${[...available, want].join(',')} (sealift bundle ... --site-platform ${want}), or, to install the tools of another platform here, load with --site-platform ${available[0]}.`,
        details: { platforms: available, wanted: want, bundle: bundleFile },
      },
    );
  const missing = SITE_TOOLS.filter((t) => !have.has(t));
  if (missing.length)
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location} lacks ${missing.map((t) => siteToolPath(want, t)).join(', ')}: its site tools for ${want} are incomplete`,
      { hint: 'The bundle was altered after it was made (sealift bundle always carries all four). Make it again.' },
    );
  return { platform: want, carried: true, available };
}

const HELM_DIFF_PLUGIN_YAML = `name: "diff"
version: "carried"
usage: "Preview helm upgrade changes as a diff"
description: "Preview helm upgrade changes as a diff (helm-diff, carried in the sealift bundle)"
useTunnel: true
command: "$HELM_PLUGIN_DIR/bin/diff"
`;

function envScript(dir: string): string {
  return `# Written by \`sealift load --extract-to\`: the tools this bundle carried, first on PATH.
# Source it from any shell:  . ${join(dir, 'env.sh')}
SEALIFT_SITE_DIR='${dir.replace(/'/g, "'\\''")}'
export PATH="$SEALIFT_SITE_DIR/bin:$PATH"
export HELM_PLUGINS="$SEALIFT_SITE_DIR/helm-plugins"
# helmfile's hooks (the KServe first-install retry) run \${HELM_BIN:-helm}: the same helm
export HELM_BIN="$SEALIFT_SITE_DIR/bin/helm"
`;
}

export interface RunbookFacts {
  dir: string;
  bundle: string;
  environment?: string;
  registry: string;
  /** the transport flag the load used (--plain-http, --insecure, --ca-file F), if any */
  transportFlags: string[];
  platform: string;
}

function runbook(f: RunbookFacts): string {
  const env = f.environment ?? 'airgap';
  const load = [
    // a bundle that came through a pipe has no path here: the same pipe again
    f.bundle === '-' ? 'cat <the bundle you loaded> | sealift load -' : `sealift load ${resolve(f.bundle)}`,
    '--registry',
    f.registry,
    ...f.transportFlags,
    '--extract-to',
    f.dir,
  ].join(' ');
  return `# Site runbook

Written by \`sealift load\`. Everything below uses only what the bundle carried (${f.platform}):
\`bin/sealift\`, \`bin/helm\`, \`bin/helmfile\` and the helm-diff plugin in \`helm-plugins/diff/\`.
No node, npm, Go or network is needed.

1. Put the carried tools first on PATH (every new shell):

   \`\`\`sh
   . ${join(f.dir, 'env.sh')}
   \`\`\`

2. Load the bundle into the registry again whenever it may have lost images (a re-run pushes
   only what is missing, and checks every image by digest):

   \`\`\`sh
   ${load}
   \`\`\`

3. Render what the cluster will pull, offline:

   \`\`\`sh
   (cd ${f.dir} && helmfile -e ${env} template > ${join(f.dir, 'rendered.yaml')})
   \`\`\`

4. Verify that every rendered image names the site registry and is there with the lock's digest:

   \`\`\`sh
   sealift verify -e ${env} --stack ${f.dir} --manifests ${join(f.dir, 'rendered.yaml')} --registry
   \`\`\`

5. Preview, then apply:

   \`\`\`sh
   (cd ${f.dir} && helmfile -e ${env} diff)
   (cd ${f.dir} && helmfile -e ${env} apply)
   \`\`\`

Nodes pull upstream names through \`containerd/certs.d/<host>/hosts.toml\`: copy that directory to
\`/etc/containerd/certs.d/\` on each node.
`;
}

/** Where each carried tool is installed under the site dir. */
export function installedToolPaths(dir: string): Record<SiteTool, string> {
  return {
    sealift: join(dir, 'bin', 'sealift'),
    helm: join(dir, 'bin', 'helm'),
    helmfile: join(dir, 'bin', 'helmfile'),
    'helm-diff': join(dir, 'helm-plugins', 'diff', 'bin', 'diff'),
  };
}

/** Installs the plan's tools into `dir` (each verified against checksums.sha256), plus env.sh and the runbook. */
export async function installSiteTools(opts: {
  archive: BundleArchive;
  checksums: ReadonlyMap<string, string>;
  plan: SiteToolsPlan;
  facts: Omit<RunbookFacts, 'platform' | 'dir'>;
  dir: string;
  /** an incremental bundle's base: its unchanged tools are the site dir's, not carried */
  base?: Pick<BundleBase, 'name' | 'siteTools'>;
  onEvent?: EventSink;
}): Promise<SiteToolsResult | undefined> {
  const onEvent = opts.onEvent ?? noEvents;
  if (!opts.plan.carried && opts.base?.siteTools.length) {
    const { installed, missing } = await checkBaseTools(opts.base, opts.plan.platform, opts.dir);
    onEvent(
      missing.length
        ? {
            type: 'warn',
            message: `the site tools did not change since the base bundle ${opts.base.name}, so this bundle carries none; ${opts.dir} lacks ${missing.join(', ')} (or holds other bytes): extract the base bundle here, or bundle without --since to carry them`,
          }
        : {
            type: 'info',
            message: `the site tools did not change since the base bundle ${opts.base.name}: the ${installed.length} installed in ${opts.dir} match`,
          },
    );
    return undefined;
  }
  if (!opts.plan.carried) {
    onEvent({
      type: 'warn',
      message: `${opts.archive.location} carries no site tools (made with --no-site-tools or by an older sealift): the site needs its own sealift, helm and helmfile; bundle with --site-platform ${opts.plan.platform} to carry them`,
    });
    return undefined;
  }
  const dir = resolve(opts.dir);
  const targets = installedToolPaths(dir);
  const installed: string[] = [];
  for (const tool of SITE_TOOLS) {
    const path = siteToolPath(opts.plan.platform, tool);
    const entry = opts.archive.lookup(path);
    const sum = opts.checksums.get(path);
    if (!entry || !sum)
      throw new SealiftError('BUNDLE_INVALID', `${opts.archive.location}: ${path} is not listed in checksums.sha256`);
    const target = targets[tool]!;
    await extractOne(opts.archive, path, sum, entry.size, target);
    await chmod(target, 0o755);
    installed.push(target);
    onEvent({ type: 'file', action: 'written', path: target });
  }
  const written = [
    [join(dir, 'helm-plugins', 'diff', 'plugin.yaml'), HELM_DIFF_PLUGIN_YAML],
    [join(dir, 'env.sh'), envScript(dir)],
    [join(dir, 'README.md'), runbook({ ...opts.facts, dir, platform: opts.plan.platform })],
  ] as const;
  for (const [file, text] of written) {
    await writeFileAtomic(file, text);
    onEvent({ type: 'file', action: 'written', path: file });
  }
  return { platform: opts.plan.platform, installed, envFile: join(dir, 'env.sh'), runbook: join(dir, 'README.md') };
}

/**
 * With --extract-to, an incremental bundle whose site tools did not change carries none: the
 * site dir the base was extracted to holds them. Says which of the base's tools for this
 * platform are installed in `dir` with the base's sha256, and which are not.
 */
export async function checkBaseTools(
  base: Pick<BundleBase, 'siteTools'>,
  platform: string,
  dir: string,
): Promise<{ installed: string[]; missing: string[] }> {
  const paths = installedToolPaths(resolve(dir));
  const installed: string[] = [];
  const missing: string[] = [];
  for (const t of base.siteTools) {
    const tool = parseSiteToolPath(t.path);
    if (!tool || tool.platform !== platform) continue;
    const file = paths[tool.tool];
    const sha = await sha256Of(file).catch(() => undefined);
    (sha === t.sha256 ? installed : missing).push(file);
  }
  return { installed, missing };
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
