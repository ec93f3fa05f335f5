// Rendering and exit codes, the only place that prints or exits.
// Every command takes --json: then stdout carries one JSON result object (and NDJSON events on
// stderr); otherwise humans get lines, and progress on a TTY.
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { dirname } from 'node:path';
import { diskFullCause, diskFullError, formatBytes } from '../disk.ts';
import { ERROR_CODES, isSealiftError, SealiftError } from '../errors.ts';
import type { EventSink, SealiftEvent } from '../events.ts';
import { redactText } from '../redact.ts';

// Everything printed passes here: no URL's user:password@ reaches a terminal, a log or --json,
// whichever module let one into a message, a hint, an event or a result.
const stdout = (text: string) => process.stdout.write(redactText(text));
const stderr = (text: string) => process.stderr.write(redactText(text));

export interface GlobalFlags {
  json?: boolean;
  quiet?: boolean;
}

export interface Output {
  json: boolean;
  onEvent: EventSink;
  /** the command's result: JSON on stdout with --json, else `human(result)` lines */
  result<T>(value: T, human: (v: T) => string | string[]): void;
  line(text: string): void;
  close(): void;
}

const isTTY = () => Boolean(process.stderr.isTTY) && process.env.CI !== 'true';

export { formatBytes };

/** Rows under a header, columns padded to their widest cell, two spaces apart. */
export function formatTable(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const fmt = (cols: readonly string[]) =>
    cols
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

/** Progress on a TTY: one status line, redrawn at most 10 times a second. */
class ProgressLine {
  private bytesDone = 0;
  private bytesTotal = 0;
  private items = 0;
  private itemsTotal = 0;
  private blobs = 0;
  private blobsTotal = 0;
  private phase = '';
  private last = 0;
  private readonly started = Date.now();
  private drawn = false;

  update(e: SealiftEvent): void {
    switch (e.type) {
      case 'phase':
        this.phase = e.name;
        this.itemsTotal = e.total ?? 0;
        this.items = 0;
        break;
      case 'blob:start':
        this.bytesTotal += e.size;
        this.blobsTotal++;
        break;
      case 'blob:progress':
        this.bytesDone += e.bytes;
        break;
      case 'blob:done':
        this.blobs++;
        // 'present': found before any transfer started; mounted/exists: started, then not sent
        if (e.skipped === 'present') this.blobsTotal++;
        else if (e.skipped) this.bytesTotal -= e.size;
        break;
      case 'image:done':
      case 'image:failed':
        this.items++;
        break;
      default:
        return;
    }
    this.draw();
  }

  private draw(force = false): void {
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const rate = this.bytesDone / secs;
    const eta =
      rate > 0 && this.bytesTotal > this.bytesDone ? Math.round((this.bytesTotal - this.bytesDone) / rate) : 0;
    const text = `${this.phase} ${this.items}/${this.itemsTotal || '?'} images  ${this.blobs}/${this.blobsTotal} blobs  ${formatBytes(this.bytesDone)}/${formatBytes(this.bytesTotal)}  ${formatBytes(rate)}/s${eta ? `  ETA ${eta}s` : ''}`;
    stderr(`\r\x1b[2K${text}`);
    this.drawn = true;
  }

  clear(): void {
    if (this.drawn) stderr('\r\x1b[2K');
    this.drawn = false;
  }
}

export function createOutput(flags: GlobalFlags): Output {
  const json = Boolean(flags.json);
  const progress = !json && isTTY() ? new ProgressLine() : undefined;
  const onEvent: EventSink = (e) => {
    if (json) {
      stderr(`${JSON.stringify(e)}\n`);
      return;
    }
    if (progress) progress.update(e);
    if (flags.quiet) return;
    if (e.type === 'warn' || e.type === 'info' || e.type === 'retry' || e.type === 'image:failed') {
      progress?.clear();
      const text =
        e.type === 'retry'
          ? `retry ${e.op} (attempt ${e.attempt}, in ${e.delayMs} ms): ${e.reason}`
          : e.type === 'image:failed'
            ? `failed ${e.ref}: ${e.message}`
            : e.message;
      stderr(`${e.type === 'warn' ? 'warning: ' : ''}${text}\n`);
    } else if (!progress && e.type === 'image:done') {
      stderr(`${e.skipped ? 'present' : 'done'} ${e.ref} ${e.digest}\n`);
    }
  };
  return {
    json,
    onEvent,
    result(value, human) {
      progress?.clear();
      if (json) stdout(`${JSON.stringify(value, null, 2)}\n`);
      else {
        const lines = human(value);
        const text = Array.isArray(lines) ? lines.join('\n') : lines;
        if (text) stdout(`${text}\n`);
      }
    },
    line(text) {
      progress?.clear();
      if (!json) stdout(`${text}\n`);
    },
    close() {
      progress?.clear();
    },
  };
}

/** Adds the flags every command has. */
export function withCommonFlags(cmd: Command): Command {
  return cmd
    .option('--json', 'machine-readable output: a JSON result on stdout, NDJSON events on stderr')
    .option('-q, --quiet', 'print only the result and errors');
}

export async function runMain(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
  } catch (e) {
    // a full disk is named as such wherever it happened (the stages name the place where they can)
    const full = diskFullCause(e);
    const err =
      full && !(isSealiftError(e) && e.code === 'DISK_FULL')
        ? await diskFullError(full.path ? dirname(full.path) : process.cwd(), 'writing', { cause: full })
        : e;
    process.exitCode = reportError(err, json);
  }
}

function reportError(e: unknown, json: boolean): number {
  if (e instanceof CommanderError) {
    // help and version exit 0; commander already printed its own message
    return e.exitCode === 0 ? 0 : ERROR_CODES.USAGE.exit;
  }
  const err = isSealiftError(e)
    ? e
    : new SealiftError('INTERNAL', e instanceof Error ? (e.stack ?? e.message) : String(e), {
        hint: 'This is a bug in sealift; please report it with the command you ran.',
      });
  if (json) {
    stdout(`${JSON.stringify({ ok: false, error: err.toJSON() }, null, 2)}\n`);
  } else {
    stderr(`error[${err.code}]: ${err.message}\n`);
    if (err.hint) stderr(`  hint: ${err.hint}\n`);
  }
  return err.exitCode;
}
