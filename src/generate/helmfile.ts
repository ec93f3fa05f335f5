// The helmfile wrapper: runs .tools/bin/helmfile with the project's helm and helm-diff plugin
// (toolEnv). A failed call is a SealiftError carrying argv, exit code and the tail of stderr.
import { execa } from 'execa';
import { SealiftError, type ErrorCode } from '../errors.ts';
import { redactArgs, stderrTail } from '../render/helm.ts';
import { requireTool, toolEnv } from '../tools.ts';

export interface HelmfileResult {
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface HelmfileOptions {
  /** directory holding helmfile.yaml.gotmpl */
  cwd: string;
  /** extra environment (HELM_CACHE_HOME, HELM_CONFIG_HOME, ...) */
  env?: Record<string, string>;
  signal?: AbortSignal;
  code?: ErrorCode;
}

/**
 * The line that says what went wrong: a sealift hook's `sealift: ...`, else helm's own
 * `Error: ...` (helmfile quotes it under STDERR), else helmfile's `in ./helmfile.yaml.gotmpl: ...`.
 */
export function helmfileReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const pick =
    lines.find((l) => l.startsWith('sealift: ')) ??
    lines.findLast((l) => l.startsWith('Error: ')) ??
    lines.find((l) => /^in \S+: /.test(l)) ??
    lines.at(-1);
  return (pick ?? 'no output').replace(/^(sealift|Error):\s*/, '').slice(0, 400);
}

/** `helmfile --file helmfile.yaml.gotmpl --helm-binary <helm> <args>` in `cwd`. */
export async function runHelmfile(args: string[], opts: HelmfileOptions): Promise<HelmfileResult> {
  const helmfile = requireTool('helmfile');
  const helm = requireTool('helm');
  const argv = ['--file', 'helmfile.yaml.gotmpl', '--helm-binary', helm, ...args];
  const started = Date.now();
  const r = await execa(helmfile, argv, {
    cwd: opts.cwd,
    env: toolEnv(opts.env),
    extendEnv: true,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: 512 * 1024 * 1024,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const durationMs = Date.now() - started;
  if (r.exitCode !== 0 || r.failed) {
    const shown = redactArgs(argv);
    const tail = stderrTail(String(r.stderr ?? ''), 30);
    const reason = r.isCanceled ? 'canceled' : helmfileReason(String(r.stderr ?? ''));
    throw new SealiftError(
      opts.code ?? 'TOOL_FAILED',
      `helmfile ${args.join(' ')} failed (exit ${r.exitCode ?? r.signal ?? '?'}) in ${opts.cwd}: ${reason.trim()}`,
      {
        hint: `${helmfile} ${shown.join(' ')}\n  stderr:\n${tail.replace(/^/gm, '    ')}`,
        details: { argv: [helmfile, ...shown], cwd: opts.cwd, exitCode: r.exitCode ?? null, stderrTail: tail },
      },
    );
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr), durationMs };
}
