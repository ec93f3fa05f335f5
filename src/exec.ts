// Running the Go tools sealift drives (helm, helmfile): the one place that spawns them, and the one
// shape a failed run takes. The error is data as well as a message, as execa's and helmfile's
// exit_error are: the argv with secret values hidden, the exit code or signal, the tail of stderr.
// `shortMessage` says what failed and how (one line); `message` adds the tool's own complaint.
import { execa } from 'execa';
import { SealiftError, type ErrorCode } from './errors.ts';
import { redactText } from './redact.ts';
import { requireTool, toolEnv, type ToolName } from './tools.ts';

export interface ToolResult {
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface ToolOptions {
  cwd?: string;
  /** extra environment on top of toolEnv (HELM_CACHE_HOME, ...) */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** the code of a failed run (default TOOL_FAILED) */
  code?: ErrorCode;
  /** what the message says failed (default `<tool> <first arg>`) */
  what?: string;
  /** the line of stderr that says what went wrong (default toolReason) */
  reason?: (stderr: string) => string;
  /** how many lines of stderr the error keeps (default 20) */
  tailLines?: number;
}

const SECRET_FLAGS = new Set(['--password', '--pass', '--token', '--key-file', '--cert-file']);
const STDERR_TAIL_LINES = 20;
const MAX_BUFFER = 512 * 1024 * 1024;

/** argv for messages: values of password-like flags replaced by `***`, and so is the userinfo of any URL. */
export function redactArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = redactText(args[i]!);
    const eq = a.indexOf('=');
    if (eq > 0 && SECRET_FLAGS.has(a.slice(0, eq))) out.push(`${a.slice(0, eq)}=***`);
    else if (SECRET_FLAGS.has(a) && i + 1 < args.length) {
      out.push(a, '***');
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * The secrets a run was given: values of password-like flags and the passwords in URLs'
 * userinfo (raw and decoded). The tool may print them back in forms no URL pattern catches
 * (helm: `invalid registry "bob:SECRET@host"`), so they are removed by value.
 */
export function secretsIn(args: readonly string[]): string[] {
  const found = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    if (eq > 0 && SECRET_FLAGS.has(a.slice(0, eq))) found.add(a.slice(eq + 1));
    else if (SECRET_FLAGS.has(a) && i + 1 < args.length) found.add(args[i + 1]!);
    for (const m of a.matchAll(/:\/\/([^\s/?#@]+)@/g)) {
      const password = m[1]!.slice(m[1]!.indexOf(':') + 1);
      if (m[1]!.includes(':') && password) {
        found.add(password);
        try {
          found.add(decodeURIComponent(password));
        } catch {
          /* not percent-encoded */
        }
      }
    }
  }
  return [...found].filter((x) => x.length > 0);
}

/** `text` with every URL's userinfo and every one of `secrets` replaced by `***`. */
export function redactOutput(text: string, secrets: readonly string[]): string {
  let out = redactText(text);
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}

export function stderrTail(stderr: string, lines = STDERR_TAIL_LINES): string {
  return stderr.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The first line of a Go tool's own complaint (`Error: ...`), else its last line. */
export function toolReason(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  const err = lines.find((l) => l.startsWith('Error:'));
  return (err ?? lines.at(-1) ?? 'no output').replace(/^Error:\s*/, '');
}

/** A tool run that failed; `details` holds tool, argv, cwd, exitCode, signal and stderrTail for --json. */
export class ToolError extends SealiftError {
  readonly tool: ToolName;
  /** what failed and how, without the tool's complaint: `helm pull x 1.0 failed (exit 1)` */
  readonly shortMessage: string;

  constructor(
    tool: ToolName,
    code: ErrorCode,
    shortMessage: string,
    reason: string,
    opts: { hint: string; details: Record<string, unknown> },
  ) {
    super(code, `${shortMessage}: ${reason}`, opts);
    this.name = 'ToolError';
    this.tool = tool;
    this.shortMessage = shortMessage;
  }
}

/** `<tool> <args>` with the project's tool environment; resolves with its output or throws ToolError. */
export async function runTool(name: ToolName, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const bin = requireTool(name);
  const started = Date.now();
  const r = await execa(bin, args, {
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    env: toolEnv(opts.env),
    extendEnv: true,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: MAX_BUFFER,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const durationMs = Date.now() - started;
  if (r.exitCode === 0 && !r.failed) return { stdout: String(r.stdout), stderr: String(r.stderr), durationMs };

  // the tool prints what it was given: a repository URL with user:password@ comes back in its stderr
  const secrets = secretsIn(args);
  const stderr = redactOutput(String(r.stderr ?? ''), secrets);
  const shown = redactArgs(args);
  const tail = stderrTail(stderr, opts.tailLines);
  const reason = r.isCanceled
    ? 'canceled'
    : r.isMaxBuffer
      ? 'its output is too large'
      : r.exitCode === undefined && !r.signal
        ? `it could not be started (${redactOutput(r.originalMessage ?? 'no reason given', secrets)})`
        : (opts.reason ?? toolReason)(stderr).trim();
  const where = opts.cwd ? ` in ${opts.cwd}` : '';
  throw new ToolError(
    name,
    opts.code ?? 'TOOL_FAILED',
    `${redactOutput(opts.what ?? `${name} ${args[0] ?? ''}`.trim(), secrets)} failed (exit ${r.exitCode ?? r.signal ?? '?'})${where}`,
    reason,
    {
      hint: `${bin} ${shown.join(' ')}\n  stderr:\n${tail.replace(/^/gm, '    ')}`,
      details: {
        tool: name,
        argv: [bin, ...shown],
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        exitCode: r.exitCode ?? null,
        ...(r.signal ? { signal: r.signal } : {}),
        stderrTail: tail,
        durationMs,
      },
    },
  );
}
