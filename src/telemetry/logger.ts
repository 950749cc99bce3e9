/*
 * Structured JSON logs on stderr. Callers pass facts (ids, counts, codes), never request content or secrets:
 * the Logger has no way to attach headers or bodies, which keeps keys and prompts out of logs by construction.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function createLogger(
  component: string,
  level: LogLevel = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const threshold = order[level];
  const log = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (order[lvl] < threshold) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, component, msg, ...fields })}\n`);
  };
  return {
    debug: (msg, fields) => log('debug', msg, fields),
    info: (msg, fields) => log('info', msg, fields),
    warn: (msg, fields) => log('warn', msg, fields),
    error: (msg, fields) => log('error', msg, fields),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * An error's class and stack frames, without its message: messages can quote request data (JSON.parse quotes
 * the text it failed on), and logs must never carry prompt content.
 */
export function errorFields(error: unknown): LogFields {
  if (!(error instanceof Error)) return { error_type: typeof error };
  const frames = (error.stack ?? '').split('\n').slice(1, 6).map((frame) => frame.trim()).join(' | ');
  return { error_type: error.name, error_frames: frames };
}
