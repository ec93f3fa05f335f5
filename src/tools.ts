// Where external tools come from: an explicit override (HELM_BIN, HELMFILE_BIN, ...), then the
// project's own .tools/bin (installed by scripts/setup.sh), then, for the single executable, the
// tools beside it (a site's DIR/bin/helm next to DIR/bin/sealift), then PATH.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SealiftError } from './errors.ts';
import { EXECUTABLE_DIR, PROJECT_ROOT } from './runtime.ts';

export { PROJECT_ROOT };

export type ToolName =
  | 'helm'
  | 'helmfile'
  | 'skopeo'
  | 'docker-registry'
  | 'containerd'
  | 'ctr'
  | 'crane'
  // the static shell carried in model images (Debian busybox-static: /bin/busybox)
  | 'busybox';

export const TOOLS_DIR = process.env.SEALIFT_TOOLS ?? join(PROJECT_ROOT, '.tools');

const OVERRIDE_ENV: Partial<Record<ToolName, string>> = {
  helm: 'HELM_BIN',
  helmfile: 'HELMFILE_BIN',
  skopeo: 'SKOPEO_BIN',
  'docker-registry': 'REGISTRY_BIN',
  crane: 'CRANE_BIN',
  busybox: 'BUSYBOX_BIN',
};

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findTool(name: ToolName): string | undefined {
  const envName = OVERRIDE_ENV[name];
  const override = envName ? process.env[envName] : undefined;
  if (override) return override;
  const candidates = [
    join(TOOLS_DIR, 'bin', name),
    ...(EXECUTABLE_DIR ? [join(EXECUTABLE_DIR, name)] : []),
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, name)),
  ];
  if (name === 'docker-registry') candidates.push('/usr/bin/docker-registry');
  return candidates.find((c) => c && isExecutable(c));
}

export function requireTool(name: ToolName): string {
  const found = findTool(name);
  if (!found) {
    const envName = OVERRIDE_ENV[name];
    throw new SealiftError('TOOL_MISSING', `${name} was not found in ${join(TOOLS_DIR, 'bin')} or on PATH`, {
      hint: `Run scripts/setup.sh to install the pinned tools${envName ? `, or set ${envName} to its path` : ''}.`,
    });
  }
  return found;
}

/** Environment for helm and helmfile children: the project's plugins (helm-diff) and tools first on PATH. */
export function toolEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: [join(TOOLS_DIR, 'bin'), ...(EXECUTABLE_DIR ? [EXECUTABLE_DIR] : []), process.env.PATH ?? ''].join(delimiter),
    ...extra,
  };
  if (!process.env.HELM_PLUGINS) env.HELM_PLUGINS = helmPluginsDir();
  // helmfile calls helm by name; make it the same helm sealift uses.
  const helm = findTool('helm');
  if (helm && !process.env.HELMFILE_HELM3) env.HELM_BIN = helm;
  return env;
}

/** The helm plugins sealift's helm runs with: the set-up's, or, for an executable installed by
 *  `load --extract-to DIR`, DIR/helm-plugins beside its bin/. */
function helmPluginsDir(): string {
  const besideExecutable = EXECUTABLE_DIR ? join(EXECUTABLE_DIR, '..', 'helm-plugins') : undefined;
  return besideExecutable && existsSync(besideExecutable) ? besideExecutable : join(TOOLS_DIR, 'helm-plugins');
}
