// Flag parsing the commands share: repeatable options, where the stack is, HOST=VALUE pairs and
// per-registry transport settings. Each turns flags into option values or a USAGE error.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SealiftError } from '../errors.ts';
import type { SiteRegistry } from '../load/index.ts';
import type { RegistryHostConfig } from '../oci/registry.ts';
import { PROJECT_ROOT } from '../tools.ts';

/** commander's reducer for a repeatable option: `--x a --x b` gives ['a', 'b']. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The stack dir: --stack, else the current directory when it has environments/, else the project. */
export function stackDirFrom(flag: string | undefined): string {
  if (flag) return resolve(flag);
  return existsSync(join(process.cwd(), 'environments', 'default.yaml')) ? process.cwd() : PROJECT_ROOT;
}

/** `--overlay <file>` (repeatable): environment files merged last. */
export function overlayOption(): Option {
  return new Option(
    '--overlay <file>',
    'extra environment file merged last, e.g. source overrides for a mirror (repeatable)',
  ).argParser(collect);
}

/** The stage options' `overlays`: the --overlay files as absolute paths, when there are any. */
export function overlaysFrom(files: string[] | undefined): { overlays?: string[] } {
  return files?.length ? { overlays: files.map((f) => resolve(f)) } : {};
}

/** `--rules <dir>` (repeatable): the user's own image rule directories. */
export function rulesOption(): Option {
  return new Option(
    '--rules <dir>',
    'a directory of your own image rule files, used with the rules/ shipped with sealift (repeatable)',
  ).argParser(collect);
}

/** The stage options' `rulesDirs`: sealift's rules/, then the --rules directories. */
export async function rulesDirsFrom(dirs: string[] | undefined): Promise<{ rulesDirs?: string[] }> {
  if (!dirs) return {};
  // loaded here, not at the top: the commands load no stage code until they run (fast --help)
  const { DEFAULT_RULES_DIR } = await import('../images/rules.ts');
  return { rulesDirs: [DEFAULT_RULES_DIR, ...dirs.map((d) => resolve(d))] };
}

/** `HOST=VALUE` split at the first `=`; `value` names the right-hand side in the error (FILE, ENDPOINT). */
export function hostValue(flag: string, v: string, value: string, example: string): [string, string] {
  const i = v.indexOf('=');
  if (i <= 0 || i === v.length - 1)
    throw new SealiftError('USAGE', `${flag} takes HOST=${value}, not "${v}"`, { hint: `e.g. ${flag} ${example}` });
  return [v.slice(0, i), v.slice(i + 1)];
}

export interface RegistryHostFlags {
  plainHttp?: string[];
  insecure?: string[];
  caFile?: string[];
  mirror?: string[];
  mirrorFallback?: boolean;
}

/**
 * Per-registry transport settings from the repeatable flags `--plain-http HOST`, `--insecure HOST`,
 * `--ca-file HOST=FILE`, `--mirror HOST=ENDPOINT`; `prefix` names them in errors (mirror's `source-`).
 */
export function registryHostsFromFlags(f: RegistryHostFlags, prefix = ''): Record<string, RegistryHostConfig> {
  const hosts: Record<string, RegistryHostConfig> = {};
  const at = (h: string) => (hosts[h] ??= {});
  for (const h of f.plainHttp ?? []) at(h).plainHttp = true;
  for (const h of f.insecure ?? []) at(h).insecureSkipVerify = true;
  for (const v of f.caFile ?? []) {
    const [h, file] = hostValue(`--${prefix}ca-file`, v, 'FILE', 'registry.corp:5000=/etc/ssl/corp-ca.pem');
    at(h).caFile = file;
  }
  for (const v of f.mirror ?? []) {
    const [h, endpoint] = hostValue(`--${prefix}mirror`, v, 'ENDPOINT', 'docker.io=mirror.corp:5000');
    if (/^[a-z]+:\/\//i.test(endpoint))
      throw new SealiftError(
        'USAGE',
        `--${prefix}mirror ${v}: give the mirror as HOST[:PORT][/PREFIX], without a scheme`,
        {
          hint: `Mark a plain-HTTP mirror with --${prefix}plain-http HOST.`,
        },
      );
    const cfg = at(h);
    cfg.mirrors = [...(cfg.mirrors ?? []), endpoint];
    if (f.mirrorFallback) cfg.mirrorFallback = true;
  }
  return hosts;
}

export interface TransportFlags {
  plainHttp?: boolean;
  insecure?: boolean;
  caFile?: string;
}

export function parseConcurrency(v: string | undefined, fallback = 4): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new SealiftError('USAGE', `--concurrency must be a whole number from 1 to 64, not "${v}"`);
  }
  return n;
}

export function siteRegistryFromFlags(host: string, f: TransportFlags, flag = '--registry'): SiteRegistry {
  if (/^[a-z]+:\/\//i.test(host)) {
    throw new SealiftError('USAGE', `${flag} takes HOST:PORT, not a URL ("${host}")`, {
      hint: 'Drop the scheme; say --plain-http for a plain-HTTP registry.',
    });
  }
  const set = [f.plainHttp && '--plain-http', f.insecure && '--insecure', f.caFile && '--ca-file'].filter(Boolean);
  if (set.length > 1)
    throw new SealiftError('USAGE', `${set.join(' and ')} exclude each other`, {
      hint: 'Plain HTTP has no TLS; --insecure skips TLS verification; --ca-file trusts a private CA.',
    });
  return {
    host,
    ...(f.plainHttp ? { plainHttp: true } : {}),
    ...(f.insecure ? { insecure: true } : {}),
    ...(f.caFile ? { caFile: f.caFile } : {}),
  };
}

export function withTransportFlags(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'the registry speaks plain HTTP (as registry:2 at most sites)')
    .option('--insecure', 'HTTPS without verifying the certificate')
    .option('--ca-file <file>', 'trust this PEM CA for the registry');
}
