// One error type for everything a user can act on. The code says what kind of failure it is,
// the message says which value and where it came from, the hint says what to do.
// Only the CLI layer (src/cli.ts and src/commands/, output.ts for errors) turns codes into exit codes.

export const ERROR_CODES = {
  USAGE: { exit: 2, doc: 'the command line is wrong' },
  CONFIG_INVALID: { exit: 3, doc: 'an environment or stack file is invalid' },
  TEMPLATE_FAILED: { exit: 3, doc: 'a template could not be rendered' },
  REF_INVALID: { exit: 4, doc: 'an image reference does not match the grammar' },
  RENDER_FAILED: { exit: 5, doc: 'helm could not render a chart' },
  TOOL_MISSING: { exit: 6, doc: 'an external tool is not installed' },
  TOOL_FAILED: { exit: 6, doc: 'an external tool failed' },
  IMAGES_CHANGED: { exit: 7, doc: 'the committed image lists differ from what rendering gives' },
  VERIFY_FAILED: { exit: 8, doc: 'verification found images or files that are not where they must be' },
  BASE_MISSING: {
    exit: 8,
    doc: 'an incremental bundle relies on manifests or blobs that are not at the target (load its base first)',
  },
  REGISTRY_ERROR: { exit: 9, doc: 'a registry answered with an error' },
  AUTH_FAILED: { exit: 9, doc: 'a registry refused the credentials' },
  NOT_FOUND: { exit: 9, doc: 'a reference, blob or chart does not exist' },
  NETWORK_ERROR: { exit: 9, doc: 'a connection failed after retries' },
  DIGEST_MISMATCH: { exit: 10, doc: 'content does not match its digest or size' },
  BUNDLE_INVALID: { exit: 10, doc: 'a bundle is damaged, tampered with or unsafe' },
  PARTIAL_FAILURE: { exit: 11, doc: 'some items failed; a re-run continues' },
  CHECK_FAILED: { exit: 12, doc: 'the preflight check found a hard incompatibility (sealift check)' },
  DOES_NOT_FIT: { exit: 13, doc: "the stack's resource requests do not fit the cluster (sealift size)" },
  LOCKED: { exit: 14, doc: 'another sealift run holds the work directory' },
  DISK_FULL: { exit: 15, doc: 'a disk ran out of space; free some and run again' },
  BUNDLE_UNTRUSTED: {
    exit: 16,
    doc: 'a bundle is unsigned, signed by another key, or altered after signing (--verify-key)',
  },
  KEY_INVALID: { exit: 17, doc: 'a signing or verification key cannot be used (type, password, format)' },
  INTERRUPTED: { exit: 130, doc: 'stopped by Ctrl-C (SIGINT) or SIGTERM; a re-run continues' },
  INTERNAL: { exit: 70, doc: 'a bug in sealift' },
} as const satisfies Record<string, { exit: number; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

const BRAND = Symbol.for('sealift.error');

export class SealiftError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly [BRAND] = true;
  /** Structured details for --json output (never credentials). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SealiftError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, ...this.details };
  }
}

export function isSealiftError(e: unknown): e is SealiftError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
