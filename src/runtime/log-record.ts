// One log record as the CLI appends it to --log when a command fails, in the --log-format of the sandbox log
// (log.ts): runc's JSON record (`{"level","msg","time"}`, which go-runc parses) or the text line. Kept apart from
// log.ts so the CLI's start does not load pino.

import { appendFileSync } from 'node:fs';

export type LogFormat = 'text' | 'json';

/** One record as the CLI writes it to --log: runc's JSON (`{"level","msg","time"}`) or the text line. */
export function logRecord(format: LogFormat, level: 'info' | 'error', msg: string, now = new Date()): string {
  if (format === 'json') return `${JSON.stringify({ level, msg, time: now.toISOString() })}\n`;
  return `${now.toISOString()} ${level} ${msg}\n`;
}

/** Appends logRecord() to `file` (0600 when it creates it); a log that cannot be written is not an error. */
export function appendLogRecord(file: string, format: LogFormat, level: 'info' | 'error', msg: string): void {
  try {
    appendFileSync(file, logRecord(format, level, msg), { mode: 0o600 });
  } catch {
    // the command's own failure is what the caller reports
  }
}
