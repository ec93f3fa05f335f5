// The environment a bundle was generated from, carried in the site dir so that `sealift verify
// -e <env> --stack <site dir>` needs no sealift checkout (whose environments may have moved on,
// or name another registry).
//
// Why one flattened file over an empty default.yaml, and not the original files:
// - the values were generated from default.yaml + <env>.yaml + every --overlay merged; carrying
//   the originals would lose the overlays (a test's or a mirror's registry and sources);
// - folding the overlays into <env>.yaml and keeping default.yaml is not the same environment in
//   general: mergeDeep is not associative where null, a list or a scalar replaces a mapping;
// - loadEnvironment always merges environments/default.yaml first, and mergeDeep({}, X) is X: so an
//   empty default.yaml plus the effective environment (the schema's output, every default spelled
//   out) reads back to exactly the environment the bundle was made from, whatever a later sealift
//   changes in its defaults. writeSiteEnvironment proves that by reading the files back.
// Credentials never travel in a bundle: user:password@ in a source URL is dropped (sources are
// not used at the site; they only say where the internet host fetched from).
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SITE_DEFAULT_MARKER } from '../bundle-format/index.ts';
import type { Environment, SourceConfig } from '../config/index.ts';
import { SealiftError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { sha256File } from './pack.ts';

function withoutCredentials(sources: Record<string, SourceConfig>): Record<string, SourceConfig> {
  const out: Record<string, SourceConfig> = {};
  for (const [name, s] of Object.entries(sources)) {
    let url = s.url;
    try {
      const u = new URL(s.url);
      if (u.username || u.password) {
        u.username = '';
        u.password = '';
        url = u.toString();
      }
    } catch {
      // not a URL: nothing to strip
    }
    out[name] = { ...s, url };
  }
  return out;
}

/** The effective environment as an environment file (what EnvironmentFileSchema reads). */
function effective(env: Environment) {
  return {
    kubeVersion: env.kubeVersion,
    registry: env.registry,
    chartsFrom: env.chartsFrom,
    sources: withoutCredentials(env.sources),
    releases: env.releases,
    ...(env.cluster ? { cluster: env.cluster } : {}),
    apiVersions: env.apiVersions,
    models: env.models,
  };
}

/** The two files, as text: environments/default.yaml (empty) and environments/<env>.yaml. */
export function siteEnvironmentFiles(env: Environment, from: readonly string[]): { path: string; text: string }[] {
  const body = stringify(effective(env), { aliasDuplicateObjects: false, lineWidth: 0 });
  return [
    {
      path: 'environments/default.yaml',
      text: `${SITE_DEFAULT_MARKER} empty on purpose.\n# Each environments/<env>.yaml here is the whole effective environment a bundle was generated\n# from (already merged); loadEnvironment merges this file first, so it must add nothing.\n{}\n`,
    },
    {
      path: `environments/${env.name}.yaml`,
      text: `${SITE_DEFAULT_MARKER} the effective environment "${env.name}" the bundle's helmfile and values\n# were generated from, flattened from (in merge order):\n${from.map((f) => `#   ${f}\n`).join('')}# Used by \`sealift verify -e ${env.name} --stack <this dir>\`. Do not edit: bundle again.\n${body}`,
    },
  ];
}

/**
 * Writes the environment files into the bundle's work dir, reads them back with loadEnvironment
 * and refuses to go on unless they give the same environment.
 */
export async function writeSiteEnvironment(
  workDir: string,
  env: Environment,
  from: readonly string[],
): Promise<{ path: string; sha256: string; size: number }[]> {
  const out: { path: string; sha256: string; size: number }[] = [];
  for (const f of siteEnvironmentFiles(env, from)) {
    const target = join(workDir, ...f.path.split('/'));
    await writeFileAtomic(target, f.text);
    const { hex, size } = await sha256File(target);
    out.push({ path: f.path, sha256: hex, size });
  }
  const { loadEnvironment } = await import('../config/index.ts');
  const back = await loadEnvironment(workDir, env.name);
  if (!isDeepStrictEqual(effective(back), effective(env)))
    throw new SealiftError(
      'INTERNAL',
      `the environment ${env.name} written into the bundle does not read back as the same environment`,
      {
        hint: 'Report this with the environment files; the bundle was not written.',
      },
    );
  return out;
}
