import { pino } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

type Fields = Record<string, unknown>;

/** Structured logger (JSON lines on stderr). Messages are static; details go in fields. */
export interface Logger {
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

function wrap(p: pino.Logger): Logger {
  return {
    trace: (msg, fields) => p.trace(fields ?? {}, msg),
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

/** pino writing synchronously to stderr, so `herald config print` keeps stdout clean. */
export function createLogger(level: LogLevel): Logger {
  return wrap(pino({ level, base: { name: 'herald' } }, pino.destination({ fd: 2, sync: true })));
}
