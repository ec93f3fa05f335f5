// The site's tools travel in the bundle: for each site platform, sealift as one executable plus
// helm, helmfile and helm-diff, as bin/<os>-<arch>/<tool>, the first entries of the tar (getting
// the loader out reads a few hundred MB, never a 50 GB bundle to its end). Where they come from:
//   sealift    this executable itself when it runs as one on that platform; else
//              dist/sealift-<os>-<arch>, which a checkout (re)builds here (scripts/build-exe.ts:
//              seconds, and nothing when unchanged) so a bundle never carries a stale loader
//   helm, helmfile, helm-diff
//              $SEALIFT_SITE_TOOLS/<os>-<arch>/ or .tools/site/<os>-<arch>/ (scripts/build-site-tools.sh),
//              or, for the executable's own platform, beside it (a site's DIR/bin/)
import { execFileSync } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, chmod, copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { EXECUTABLE_DIR, IS_EXECUTABLE, PROJECT_ROOT } from '../runtime.ts';
import { TOOLS_DIR } from '../tools.ts';
import {
  hostPlatform,
  siteToolPath,
  SITE_PLATFORMS,
  SITE_TOOLS,
  type SiteTool,
  type SiteToolsIndex,
} from '../bundle-format/index.ts';
import { sha256File } from './pack.ts';

export const DEFAULT_SITE_PLATFORMS: readonly string[] = ['linux/amd64'];

/** `--site-platform linux/amd64,linux/arm64` (repeatable or comma-separated), checked. */
export function parseSitePlatforms(values: readonly string[]): string[] {
  const out = [
    ...new Set(
      values
        .flatMap((v) => v.split(','))
        .map((v) => v.trim())
        .filter(Boolean),
    ),
  ];
  for (const p of out) {
    if (!(SITE_PLATFORMS as readonly string[]).includes(p))
      throw new SealiftError(
        'USAGE',
        `--site-platform ${p}: sealift carries site tools for ${SITE_PLATFORMS.join(' and ')} only`,
        {
          hint: `Give one or more of ${SITE_PLATFORMS.join(', ')}, comma-separated, e.g. --site-platform linux/amd64,linux/arm64.`,
        },
      );
  }
  return out;
}

/** What bundle.json records about the carried tools. */

const BUILD_EXE = join(PROJECT_ROOT, 'scripts', 'build-exe.ts');
const BUILD_TOOLS = join(PROJECT_ROOT, 'scripts', 'build-site-tools.sh');

async function isExecutableFile(p: string): Promise<boolean> {
  return access(p, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** The sealift executable for a platform; a checkout builds it first (idempotent). */
async function findSealift(platform: string, onEvent: EventSink): Promise<string> {
  if (IS_EXECUTABLE && platform === hostPlatform()) return process.execPath;
  const beside = EXECUTABLE_DIR ? join(EXECUTABLE_DIR, `sealift-${platform.replace('/', '-')}`) : undefined;
  if (beside && (await isExecutableFile(beside))) return beside;
  const built = join(PROJECT_ROOT, 'dist', `sealift-${platform.replace('/', '-')}`);
  if (!IS_EXECUTABLE && existsSync(BUILD_EXE)) {
    onEvent({ type: 'phase', name: `building the sealift executable for ${platform}` });
    try {
      execFileSync(process.execPath, [BUILD_EXE, '--platform', platform], {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-5).join('\n  ');
      throw new SealiftError(
        'TOOL_MISSING',
        `building the sealift executable for ${platform} failed: ${stderr || errorMessage(e)}`,
        {
          hint: `Run npm run build:exe -- --platform ${platform} and read its output, or bundle with --no-site-tools.`,
        },
      );
    }
  }
  if (await isExecutableFile(built)) return built;
  throw new SealiftError(
    'TOOL_MISSING',
    `there is no sealift executable for ${platform} to carry (looked for ${beside ?? built})`,
    {
      hint: IS_EXECUTABLE
        ? `Put sealift-${platform.replace('/', '-')} (npm run build:exe in a sealift checkout) beside this executable, or bundle with --no-site-tools.`
        : `Run npm run build:exe -- --platform ${platform}, or bundle with --no-site-tools.`,
    },
  );
}

/** helm, helmfile or helm-diff for a platform, from the site-tools build (or beside this executable). */
async function findGoTool(platform: string, tool: Exclude<SiteTool, 'sealift'>): Promise<string> {
  const dir = platform.replace('/', '-');
  const candidates = [
    ...(process.env.SEALIFT_SITE_TOOLS ? [join(process.env.SEALIFT_SITE_TOOLS, dir, tool)] : []),
    join(TOOLS_DIR, 'site', dir, tool),
    ...(EXECUTABLE_DIR && platform === hostPlatform()
      ? [
          join(EXECUTABLE_DIR, tool),
          ...(tool === 'helm-diff' ? [join(EXECUTABLE_DIR, '..', 'helm-plugins', 'diff', 'bin', 'diff')] : []),
        ]
      : []),
  ];
  for (const c of candidates) if (await isExecutableFile(c)) return c;
  throw new SealiftError(
    'TOOL_MISSING',
    `there is no ${tool} for ${platform} to carry (looked in ${candidates.map(dirname).join(', ')})`,
    {
      hint:
        existsSync(BUILD_TOOLS) && !IS_EXECUTABLE
          ? `Build them (a few minutes, needs Go and the module proxy): bash scripts/build-site-tools.sh ${platform}. Or bundle with --no-site-tools.`
          : `Set SEALIFT_SITE_TOOLS to a directory holding ${dir}/{helm,helmfile,helm-diff} (scripts/build-site-tools.sh in a sealift checkout builds them), or bundle with --no-site-tools.`,
    },
  );
}

/**
 * Copies every site tool for `platforms` into `<workDir>/bin/<os>-<arch>/` (or, without a
 * workDir, finds them where they are) and returns what bundle.json lists. Every tool is found before any is copied: a missing one fails before the
 * long part of the bundle, naming how to get it.
 */
export async function assembleSiteTools(opts: {
  /** copies the tools into <workDir>/bin/<os>-<arch>/; unset: only finds and hashes them where they are */
  workDir?: string;
  platforms: readonly string[];
  onEvent?: EventSink;
}): Promise<SiteToolsIndex & { sources: Map<string, string> }> {
  const onEvent = opts.onEvent ?? noEvents;
  const sources: { platform: string; tool: SiteTool; from: string }[] = [];
  for (const platform of opts.platforms) {
    for (const tool of SITE_TOOLS)
      sources.push({
        platform,
        tool,
        from: tool === 'sealift' ? await findSealift(platform, onEvent) : await findGoTool(platform, tool),
      });
  }
  onEvent({ type: 'phase', name: `site tools for ${opts.platforms.join(', ')}` });
  const files: SiteToolsIndex['files'] = [];
  // bundle path -> the file its bytes are in (a packed bundle copies them straight into the tar)
  const where = new Map<string, string>();
  for (const s of sources) {
    const path = siteToolPath(s.platform, s.tool);
    let target = s.from;
    if (opts.workDir) {
      target = join(opts.workDir, ...path.split('/'));
      await mkdir(dirname(target), { recursive: true });
      await copyFile(s.from, target, constants.COPYFILE_FICLONE);
      await chmod(target, 0o755); // `tar -xf bundle.tar bin/linux-amd64/sealift` gives a runnable file
      onEvent({ type: 'file', action: 'written', path: target });
    }
    const { hex, size } = await sha256File(target);
    files.push({ path, platform: s.platform, tool: s.tool, size, sha256: hex });
    where.set(path, target);
  }
  return { platforms: [...opts.platforms], files, sources: where };
}
