// The helmfile wrapper: runs .tools/bin/helmfile with the project's helm and helm-diff plugin
// (toolEnv) through runTool (src/exec.ts): a failed call is a ToolError carrying argv, exit code
// and the tail of stderr, its message the line helmfile's output names the problem in.
import type { ErrorCode } from '../errors.ts';
import { runTool, type ToolResult } from '../exec.ts';
import { requireTool } from '../tools.ts';

export type HelmfileResult = ToolResult;

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
export function runHelmfile(args: string[], opts: HelmfileOptions): Promise<HelmfileResult> {
  const argv = ['--file', 'helmfile.yaml.gotmpl', '--helm-binary', requireTool('helm'), ...args];
  return runTool('helmfile', argv, {
    ...opts,
    what: `helmfile ${args.join(' ')}`,
    reason: helmfileReason,
    tailLines: 30,
  });
}
