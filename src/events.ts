// Progress is data: the core emits events, only the CLI renders them (TTY bars, lines or NDJSON).
import type { ErrorCode } from './errors.ts';

export type SealiftEvent =
  | { type: 'info'; message: string; fields?: Record<string, unknown> }
  | { type: 'warn'; code?: ErrorCode | string; message: string; fields?: Record<string, unknown> }
  | { type: 'file'; action: 'written' | 'unchanged' | 'removed'; path: string }
  | { type: 'image:start'; ref: string; index: number; total: number }
  | { type: 'image:done'; ref: string; digest: string; skipped?: boolean }
  | { type: 'image:failed'; ref: string; message: string }
  | { type: 'blob:start'; digest: string; size: number; ref?: string }
  | { type: 'blob:progress'; digest: string; bytes: number }
  | { type: 'blob:done'; digest: string; size: number; skipped?: 'exists' | 'mounted' | 'present' }
  | { type: 'retry'; op: string; attempt: number; delayMs: number; reason: string }
  | { type: 'phase'; name: string; total?: number };

export type EventSink = (e: SealiftEvent) => void;

export interface RunOptions {
  onEvent?: EventSink;
  signal?: AbortSignal;
}

export const noEvents: EventSink = () => {};
