// `sealift verify -e <env>`: render side. Flags -> verifyRenderedImages -> output and exit code.
// The stage code is imported when the command runs, so `--help` and other commands do not load it.
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { ERROR_CODES, SealiftError } from '../errors.ts';
import type { Offender, VerifyRenderResult } from '../verify/render.ts';
import type { SignatureStatus, SignatureVerifyResult } from '../verify/signatures.ts';
import {
  collect,
  overlaysFrom,
  rulesDirsFrom,
  siteRegistryFromFlags,
  stackDirFrom,
  withTransportFlags,
  type TransportFlags,
} from './flags.ts';
import type { RegistryHostConfig } from '../oci/registry.ts';
import { withStageFlags } from './images.ts';
import { createOutput, withCommonFlags, type GlobalFlags } from './output.ts';

interface VerifyFlags extends GlobalFlags, TransportFlags {
  registry?: string | boolean;
  env?: string;
  stack?: string;
  lock?: string;
  scheme?: string;
  rules?: string[];
  overlay?: string[];
  manifests?: string[];
  cacheDir?: string;
  signatures?: boolean;
  key?: string;
}

const PROBLEM_TEXT: Record<Offender['problem'], (v: VerifyRenderResult) => string> = {
  'outside-registry': (v) => `not in ${v.registry}`,
  'not-in-list': () => 'not in the image list',
  missing: () => 'the registry does not have it',
  'digest-mismatch': () => 'the registry serves another digest than the lock',
  'registry-error': () => 'the registry could not answer',
};

/** What to do about each kind of escape, once. */
function fixHints(v: VerifyRenderResult): string[] {
  const kinds = new Set(v.offenders.map((o) => o.problem));
  const hints: string[] = [];
  if (kinds.has('outside-registry'))
    hints.push(
      `hint: point the value that sets each image at the registry: run \`sealift images -e <env>\` so its knob is inferred into the lock, or add its values path to releases.<release>.imageKnobs in the environment files (sealift images scan <chart> --airgap-values HOST shows which knob moves what); an image no value can move gets a knobless rule (rules/README.md)`,
    );
  if (kinds.has('not-in-list'))
    hints.push(`hint: the list is older than the values: run \`sealift images -e ${v.environment}\` and commit it`);
  if (kinds.has('missing') || kinds.has('digest-mismatch'))
    hints.push(
      'hint: load the bundle made from this list into the registry (sealift load), or mirror the images (sealift mirror)',
    );
  return hints;
}

async function runVerify(flags: VerifyFlags): Promise<void> {
  if (flags.signatures || flags.key) return runSignatureVerify(flags);
  const out = createOutput(flags);
  if (!flags.env)
    throw new SealiftError('USAGE', 'sealift verify needs -e <env>', { hint: 'e.g. sealift verify -e airgap' });
  const { verifyRenderedImages } = await import('../verify/render.ts');
  const { formatOrigin } = await import('../images/extract.ts');
  const { parseNamingScheme } = await import('../oci/naming.ts');
  const registry = flags.registry ? await registryToCheck(flags, stackDirFrom(flags.stack), flags.env) : undefined;
  const r = await verifyRenderedImages({
    ...(registry ? { registry } : {}),
    stackDir: stackDirFrom(flags.stack),
    env: flags.env,
    ...(flags.lock ? { lock: resolve(flags.lock) } : {}),
    ...(flags.scheme !== undefined ? { scheme: parseNamingScheme(flags.scheme) } : {}),
    ...(await rulesDirsFrom(flags.rules)),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    ...overlaysFrom(flags.overlay),
    ...(flags.manifests?.length ? { manifests: flags.manifests.map((f) => resolve(f)) } : {}),
    onEvent: out.onEvent,
  });
  for (const x of r.excluded) {
    out.onEvent({
      type: 'warn',
      code: 'VERIFY_FAILED',
      message: `${x.reference} is left out of the list by ${x.by} <- ${x.why.map(formatOrigin).join('; ')}`,
    });
  }
  for (const k of r.knobless) {
    out.onEvent({
      type: 'warn',
      code: 'VERIFY_FAILED',
      message: `${k.reference} stays outside ${r.registry ?? 'the registry'}: no values knob moves it (rule ${k.rule}: ${k.description}) <- ${k.why.map(formatOrigin).join('; ')}`,
    });
  }
  out.result(r, (v) => [
    ...v.offenders.flatMap((o) => [
      `${o.problem === 'outside-registry' || o.problem === 'not-in-list' ? 'escape' : o.problem}: ${o.reference} (${PROBLEM_TEXT[o.problem](v)})`,
      ...o.why.map((w) => `    <- ${formatOrigin(w)}`),
    ]),
    ...(v.registryChecks
      ? [
          `registry: ${v.registryChecks.filter((c) => c.status === 'present').length} of ${v.registryChecks.length} images present`,
        ]
      : []),
    v.ok
      ? `verify ${v.environment}: ${v.checked - v.knobless.length} of ${v.checked} images the deployed render pulls are ${v.registry ? `in ${v.registry}${v.scheme === 'scoped' ? ' (scoped names)' : ''} and ` : ''}in ${relative(process.cwd(), v.lock) || v.lock}${v.knobless.length ? `; ${v.knobless.length} knob-less ones stay where upstream has them (warnings)` : ''}`
      : `verify ${v.environment}: ${v.offenders.length} of ${v.checked} images escape ${v.registry ?? 'the list'}`,
    ...(v.ok ? [] : fixHints(v)),
  ]);
  if (!r.ok) process.exitCode = ERROR_CODES.VERIFY_FAILED.exit;
}

const SIGNATURE_TEXT: Record<Exclude<SignatureStatus, 'signed'>, string> = {
  unsigned: 'unsigned',
  invalid: 'bad signature',
  missing: 'missing',
  mismatch: 'digest mismatch',
  error: 'error',
};

/** `verify --signatures --key PUB`: every image of the lock, at the site registry, signed by that key. */
async function runSignatureVerify(flags: VerifyFlags): Promise<void> {
  if (!flags.signatures || !flags.key)
    throw new SealiftError('USAGE', '--signatures and --key go together: verify --signatures --key cosign.pub', {
      hint: 'e.g. sealift verify --signatures --key cosign.pub -e airgap --registry',
    });
  if (!flags.env && !flags.lock)
    throw new SealiftError('USAGE', 'verify --signatures needs the images to check: -e <env> or --lock FILE', {
      hint: 'At the site: --lock site/imagelists/<env>.lock.json (load --extract-to wrote it).',
    });
  if (typeof flags.registry !== 'string' && !flags.env)
    throw new SealiftError('USAGE', 'verify --signatures --lock FILE needs the registry: --registry HOST:PORT');
  const out = createOutput(flags);
  const stackDir = stackDirFrom(flags.stack);
  const { verifyImageSignatures } = await import('../verify/signatures.ts');
  const { parseNamingScheme } = await import('../oci/naming.ts');
  const env = flags.env
    ? await (await import('../config/index.ts')).loadEnvironment(stackDir, flags.env, overlaysFrom(flags.overlay))
    : undefined;
  const registry = await registryToCheck({ ...flags, registry: flags.registry ?? true }, stackDir, flags.env ?? '');
  const { lockPath } = await import('../images/lock.ts');
  const r = await verifyImageSignatures({
    lock: flags.lock ? resolve(flags.lock) : lockPath(join(stackDir, 'imagelists'), flags.env ?? ''),
    registry,
    scheme: flags.scheme !== undefined ? parseNamingScheme(flags.scheme) : (env?.registry?.scheme ?? 'host-swap'),
    key: resolve(flags.key),
    onEvent: out.onEvent,
  });
  out.result(r, (v: SignatureVerifyResult) => [
    ...v.images
      .filter((i) => i.status !== 'signed')
      .map(
        (i) =>
          `${SIGNATURE_TEXT[i.status as Exclude<SignatureStatus, 'signed'>]}: ${i.target} (${i.reference}): ${i.message ?? ''}`,
      ),
    v.ok
      ? `verify --signatures: all ${v.checked} images in ${v.registry} have a valid cosign signature by ${flags.key}`
      : `verify --signatures: ${v.images.filter((i) => i.status !== 'signed').length} of ${v.checked} images in ${v.registry} have no valid signature by ${flags.key}`,
  ]);
  if (!r.ok) process.exitCode = ERROR_CODES.VERIFY_FAILED.exit;
}

/** `--registry` alone: the environment's registry; `--registry HOST:PORT`: another address of it. */
async function registryToCheck(
  flags: VerifyFlags,
  stackDir: string,
  envName: string,
): Promise<{ host: string } & RegistryHostConfig> {
  let host = typeof flags.registry === 'string' ? flags.registry : undefined;
  let plainHttp = flags.plainHttp ?? [];
  if (!host) {
    const { loadEnvironment } = await import('../config/index.ts');
    const env = await loadEnvironment(stackDir, envName, overlaysFrom(flags.overlay));
    if (!env.registry)
      throw new SealiftError('USAGE', `environment ${envName} has no registry to check`, {
        hint: 'Give one: --registry HOST:PORT.',
      });
    host = env.registry.host;
    if (env.registry.plainHttp && !flags.insecure?.length && !flags.caFile?.length) plainHttp = [...plainHttp, ''];
  }
  const site = siteRegistryFromFlags(host, { ...flags, plainHttp });
  return {
    host: site.host,
    ...(site.plainHttp ? { plainHttp: true } : {}),
    ...(site.insecure ? { insecureSkipVerify: true } : {}),
    ...(site.caFile ? { caFile: site.caFile } : {}),
  };
}

export function registerVerify(program: Command): void {
  withCommonFlags(
    withTransportFlags(
      withStageFlags(
        program
          .command('verify')
          .description(
            'Render the environment as deployed and prove every image it pulls is in its registry and in the image list',
          )
          .option('-e, --env <env>', 'the environment (environments/<env>.yaml)')
          .option('--lock <file>', 'the image lock to check against (default <stack>/imagelists/<env>.lock.json)')
          .option(
            '--scheme <scheme>',
            "how the loader named images in the registry: host-swap or scoped (default: the environment's registry.scheme)",
          )
          .option(
            '--manifests <file>',
            'check this rendered output (e.g. of `helmfile -e <env> template`) instead of rendering the environment (repeatable)',
            collect,
          )
          .option(
            '--signatures',
            'instead: check that every image of the lock has a valid cosign signature by --key at the registry (offline: no Rekor, no Fulcio)',
          )
          .option('--key <file>', 'with --signatures: the PEM public key the images are signed for (cosign.pub)')
          .option(
            '--registry [host:port]',
            "also check that every image is in the registry (default: the environment's; give HOST:PORT for another address of it)",
          ),
      ),
      '--registry',
    ),
  ).action((flags: VerifyFlags) => runVerify(flags));
}
