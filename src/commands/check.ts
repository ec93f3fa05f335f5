// `sealift check -e <env>`: flags -> checkEnvironment -> a table, warnings and the exit code.
// The stage code is imported when the command runs.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ERROR_CODES, SealiftError } from '../errors.ts';
import type { CheckFinding, CheckLevel, CheckResult } from '../check/index.ts';
import { collect, overlayOption, overlaysFrom, stackDirFrom } from './flags.ts';
import { createOutput, formatTable, withCommonFlags, type GlobalFlags } from './output.ts';

interface CheckFlags extends GlobalFlags {
  env?: string;
  stack?: string;
  overlay?: string[];
  compat?: string[];
  cacheDir?: string;
}

const LEVEL_TEXT: Record<CheckLevel, string> = { hard: 'FAIL', warn: 'WARN', ok: 'ok', unknown: '?' };

function table(r: CheckResult): string[] {
  const rows = r.findings.map((f: CheckFinding) => [
    LEVEL_TEXT[f.level],
    [f.component, f.version].filter(Boolean).join(' '),
    f.requirement,
    f.actual,
    f.source ?? '-',
  ]);
  const lines = formatTable(['LEVEL', 'COMPONENT', 'REQUIRES', 'ENVIRONMENT', 'SOURCE'], rows);
  for (const f of r.findings.filter((x) => x.level === 'hard')) lines.push(`fail: ${f.message}`);
  lines.push(
    `check ${r.environment} (Kubernetes ${r.kubeVersion}): ${r.findings.length} checks, ${r.hard} failed, ${r.warnings} warnings` +
      (r.ok ? '' : ': the stack will not work on this cluster as configured'),
  );
  return lines;
}

async function runCheck(flags: CheckFlags): Promise<void> {
  const out = createOutput(flags);
  if (!flags.env)
    throw new SealiftError('USAGE', 'sealift check needs -e <env>', { hint: 'e.g. sealift check -e airgap' });
  const { checkEnvironment, DEFAULT_COMPAT_DIR } = await import('../check/index.ts');
  const r = await checkEnvironment({
    stackDir: stackDirFrom(flags.stack),
    env: flags.env,
    ...overlaysFrom(flags.overlay),
    ...(flags.compat ? { compatDirs: [DEFAULT_COMPAT_DIR, ...flags.compat.map((d) => resolve(d))] } : {}),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    onEvent: out.onEvent,
  });
  for (const f of r.findings.filter((x) => x.level === 'warn'))
    out.onEvent({ type: 'warn', code: 'CHECK_FAILED', message: f.message, fields: { component: f.component } });
  out.result(r, table);
  if (!r.ok) process.exitCode = ERROR_CODES.CHECK_FAILED.exit;
}

/** The flags both preflight commands (check, size) take: the environment and where it lives. */
export function withPreflightFlags(cmd: Command, stackNote: string): Command {
  return cmd
    .option('-e, --env <env>', 'the environment (environments/<env>.yaml)')
    .option(
      '--stack <dir>',
      `the directory holding environments/ (${stackNote}default: current directory, else the sealift checkout)`,
    )
    .addOption(overlayOption())
    .option('--cache-dir <dir>', 'where pulled charts are kept (default $SEALIFT_CACHE_DIR or ~/.cache/sealift)');
}

export function registerCheck(program: Command): void {
  withCommonFlags(
    withPreflightFlags(
      program
        .command('check')
        .description(
          "Preflight, offline: the environment's Kubernetes version against every chart's kubeVersion, each component's documented range and the APIs it renders, and the components against each other",
        ),
      'a site dir from load --extract-to: its charts/ are read; ',
    )
      .option(
        '--compat <dir>',
        "a directory of your own compatibility files, read after sealift's compat/ (repeatable)",
        collect,
      )
      .addHelpText(
        'after',
        `
Checks: each chart's Chart.yaml kubeVersion; each component's Kubernetes range and the
components against each other (compat/*.yaml); every rendered kind at its apiVersion against the
APIs the Kubernetes version serves or the environment's own CRDs define.

Levels: FAIL (hard: a chart's kubeVersion excludes the cluster, a component refuses to start
below its minimum, a rendered apiVersion the cluster does not serve), WARN (outside the range
upstream documents, named with its source; a custom kind no release defines), ok, ? (no
compatibility data for that version).

--json: {ok, environment, kubeVersion, hard, warnings, findings: [{level, check, component,
version, releases, requirement, actual, why, source, message}]} on stdout.

Exit codes: 0 no hard finding (warnings allowed); ${ERROR_CODES.CHECK_FAILED.exit} a hard finding; ${ERROR_CODES.CONFIG_INVALID.exit} an invalid
environment or compat file; ${ERROR_CODES.USAGE.exit} usage; ${ERROR_CODES.RENDER_FAILED.exit} helm could not render a chart; ${ERROR_CODES.TOOL_FAILED.exit} helm failed; ${ERROR_CODES.NOT_FOUND.exit} a chart could not be pulled.`,
      ),
  ).action((flags: CheckFlags) => runCheck(flags));
}
