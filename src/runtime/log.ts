// Logging of the sandbox process (its stdout/stderr go to <root>/<sid>/sandbox.log, or the --log file).
// --log-format json: one JSON object per line in runc's shape (logrus): a string `level`, `msg` and an RFC 3339
// `time`, then pid, sandbox and the fields; go-runc (containerd's runc shim, podman's conmon) reads the last
// error from it.
// --log-format text (default): one readable line per record, `<ISO time> <level> sandbox=<id> <msg> {fields}`.
// The CLI appends a failed command's error to the --log file in the same format (log-record.ts).

import { writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';

import type { LogFormat } from './log-record.js';

export type { LogFormat } from './log-record.js';

export interface RuntimeLogger {
  info(msg: string, extra?: Record<string, unknown>): void;
  error(msg: string, extra?: Record<string, unknown>): void;
}

export function createLogger(format: LogFormat, sandbox: string, fd = 1): RuntimeLogger {
  if (format === 'json') {
    const l: Logger = pino(
      {
        base: { pid: process.pid, sandbox },
        formatters: { level: (label) => ({ level: label }) },
        timestamp: pino.stdTimeFunctions.isoTime,
      },
      pino.destination({ dest: fd, sync: true }),
    );
    return {
      info: (msg, extra = {}) => l.info(extra, msg),
      error: (msg, extra = {}) => l.error(extra, msg),
    };
  }
  const line = (level: string, msg: string, extra: Record<string, unknown>): void => {
    const fields = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : '';
    writeSync(fd, `${new Date().toISOString()} ${level} sandbox=${sandbox} ${msg}${fields}\n`);
  };
  return { info: (m, e = {}) => line('info', m, e), error: (m, e = {}) => line('error', m, e) };
}

