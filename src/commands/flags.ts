// Flag parsing the commands share: repeatable options, where the stack is, HOST=VALUE pairs and
// per-registry transport settings. Each turns flags into option values or a USAGE error.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SealiftError } from '../errors.ts';
import type { SiteRegistry } from '../load/index.ts';
import type { RegistryHostConfig } from '../oci/registry.ts';
import type { Platform, PlatformSelection } from '../oci/types.ts';
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

/** One registry address as the flags take it: HOST[:PORT], HOST a DNS name, IPv4 or [IPv6]. */
const HOST_RE =
  /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::(\d+))?$/;

/** Checks `host` is HOST[:PORT] (port 1-65535) before any request is built from it; USAGE otherwise. */
export function registryHost(host: string, flag: string, example = `${flag} 10.61.3.31:35000`): string {
  if (/^[a-z]+:\/\//i.test(host)) {
    throw new SealiftError('USAGE', `${flag} takes HOST:PORT, not a URL ("${host}")`, {
      hint: 'Drop the scheme; say --plain-http for a plain-HTTP registry.',
    });
  }
  const m = HOST_RE.exec(host);
  const port = m?.[1] === undefined ? undefined : Number(m[1]);
  if (!m || (port !== undefined && (port < 1 || port > 65535)))
    throw new SealiftError(
      'USAGE',
      `${flag}: ${JSON.stringify(host)} is not a registry address (HOST or HOST:PORT${port !== undefined ? `, port 1-65535, not ${port}` : ''})`,
      { hint: `e.g. ${example}` },
    );
  return host;
}

// The transport flags, one convention in every command (bundle, load, mirror, verify):
//   --plain-http [HOST]      HOST speaks plain HTTP
//   --insecure [HOST]        HTTPS to HOST without certificate checks
//   --ca-file [HOST=]FILE    trust FILE (PEM) as the CA of HOST
// each repeatable. A command with one registry of its own (load --registry, mirror --to,
// verify --registry) lets HOST be left out: it means that registry. bundle reads from many
// registries, so there HOST is required. mirror's --source-* spellings are the same flags.
export const TRANSPORT_CONVENTION =
  'Transport flags take the registry they apply to: --plain-http HOST, --insecure HOST, --ca-file HOST=FILE (repeatable)';

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
  const at = (h: string, flag: string) => {
    if (h === '')
      throw new SealiftError('USAGE', `${flag} needs the registry it applies to here`, {
        hint: `This command reads from several registries: name one, e.g. ${flag} registry.corp:5000 (repeatable).`,
      });
    return (hosts[registryHost(h, flag)] ??= {});
  };
  for (const h of f.plainHttp ?? []) at(h, `--${prefix}plain-http`).plainHttp = true;
  for (const h of f.insecure ?? []) at(h, `--${prefix}insecure`).insecureSkipVerify = true;
  for (const v of f.caFile ?? []) {
    const [h, file] = hostValue(`--${prefix}ca-file`, v, 'FILE', 'registry.corp:5000=/etc/ssl/corp-ca.pem');
    at(h, `--${prefix}ca-file`).caFile = file;
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
    registryHost(endpoint.split('/')[0] ?? '', `--${prefix}mirror ${v}`, `--${prefix}mirror ${h}=mirror.corp:5000`);
    const cfg = at(h, `--${prefix}mirror`);
    cfg.mirrors = [...(cfg.mirrors ?? []), endpoint];
    if (f.mirrorFallback) cfg.mirrorFallback = true;
  }
  return hosts;
}

/** The transport flags as commander gives them: '' where HOST was left out. */
export interface TransportFlags {
  plainHttp?: string[];
  insecure?: string[];
  caFile?: string[];
}

/**
 * `--platform OS/ARCH[/VARIANT]` (repeatable) and `--all-platforms`, the same in every command
 * that copies images; `defaultText` says what the command keeps without them (bundle: the site's
 * linux/amd64, with its own lock recording the digest; mirror: the exact graph the upstream
 * lock's digest names, since mirror writes no lock of its own).
 */
export function withPlatformFlags(cmd: Command, defaultText: string): Command {
  return cmd
    .option(
      '--platform <os/arch[/variant]>',
      `keep only this platform of multi-platform images (repeatable; default: ${defaultText})`,
      collect,
      [] as string[],
    )
    .option('--all-platforms', 'keep every platform of every image (the exact upstream graph)');
}

export interface PlatformFlags {
  platform?: string[];
  allPlatforms?: boolean;
}

/** The selection the platform flags ask for; `fallback` when neither is given. */
export function platformSelectionFrom(
  f: PlatformFlags,
  parsePlatform: (s: string) => Platform,
  fallback: PlatformSelection,
): PlatformSelection {
  if (f.allPlatforms && f.platform?.length)
    throw new SealiftError('USAGE', '--platform and --all-platforms exclude each other');
  if (f.allPlatforms) return { kind: 'all' };
  return f.platform?.length ? { kind: 'only', platforms: f.platform.map(parsePlatform) } : fallback;
}

export function parseConcurrency(v: string | undefined, fallback = 4): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new SealiftError('USAGE', `--concurrency must be a whole number from 1 to 64, not "${v}"`);
  }
  return n;
}

/**
 * The command's own registry (`host`, from `flag`) with the transport flags that name it or no
 * host. Flags naming other hosts are returned in `others` where the command has other registries
 * (mirror's sources); elsewhere (`others: 'refuse'`) they are a USAGE error naming the registry.
 */
export function siteRegistryFromFlags(
  host: string,
  f: TransportFlags,
  flag = '--registry',
  others: 'refuse' | 'return' = 'refuse',
): SiteRegistry & { others: TransportFlags } {
  registryHost(host, flag);
  const rest: Required<TransportFlags> = { plainHttp: [], insecure: [], caFile: [] };
  const mine = (name: string, h: string, value: string, list: string[]) => {
    if (h === '' || h === host) return true;
    if (others === 'refuse')
      throw new SealiftError('USAGE', `--${name} ${value}: ${h} is not the registry (${flag} ${host})`, {
        hint: `Say --${name}${name === 'ca-file' ? ' FILE' : ''} (or --${name} ${name === 'ca-file' ? `${host}=FILE` : host}), after ${flag} or before another option.`,
      });
    list.push(value);
    return false;
  };
  const plainHttp = (f.plainHttp ?? []).filter((h) => mine('plain-http', h, h, rest.plainHttp)).length > 0;
  const insecure = (f.insecure ?? []).filter((h) => mine('insecure', h, h, rest.insecure)).length > 0;
  let caFile: string | undefined;
  for (const v of f.caFile ?? []) {
    const i = v.indexOf('=');
    // FILE alone, or HOST=FILE (a file name with "=" in it needs the HOST= form)
    const [h, file] = i > 0 && HOST_RE.test(v.slice(0, i)) ? [v.slice(0, i), v.slice(i + 1)] : ['', v];
    if (!file)
      throw new SealiftError('USAGE', `--ca-file ${v}: no file`, { hint: 'e.g. --ca-file /etc/ssl/site-ca.pem' });
    if (mine('ca-file', h, v, rest.caFile)) caFile = file;
  }
  const set = [plainHttp && '--plain-http', insecure && '--insecure', caFile && '--ca-file'].filter(Boolean);
  if (set.length > 1)
    throw new SealiftError('USAGE', `${set.join(' and ')} exclude each other`, {
      hint: 'Plain HTTP has no TLS; --insecure skips TLS verification; --ca-file trusts a private CA.',
    });
  return {
    host,
    ...(plainHttp ? { plainHttp: true } : {}),
    ...(insecure ? { insecure: true } : {}),
    ...(caFile ? { caFile } : {}),
    others: rest,
  };
}

/** The transport flags (see TRANSPORT_CONVENTION); `what` names the registry HOST may be left out for. */
export function withTransportFlags(cmd: Command, what?: string): Command {
  const own = what ? `; HOST defaults to ${what}` : '';
  return cmd
    .addOption(
      new Option('--plain-http [host]', `this registry speaks plain HTTP (repeatable${own})`)
        .argParser(collect)
        .preset(''),
    )
    .addOption(
      new Option('--insecure [host]', `HTTPS to this registry without certificate checks (repeatable${own})`)
        .argParser(collect)
        .preset(''),
    )
    .addOption(
      new Option(
        '--ca-file <[host=]file>',
        `trust this PEM CA for the registry (repeatable${what ? `; without HOST= it is ${what}'s` : ''})`,
      ).argParser(collect),
    );
}
