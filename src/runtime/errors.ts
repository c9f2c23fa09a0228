// The runtime's user-visible error: a code the CLI maps to its exit status and a one-line message that says
// what was wrong and what to do.

export type RuntimeErrorCode = 'NOT_FOUND' | 'EXISTS' | 'INVALID' | 'STATE' | 'INTERNAL';

export class RuntimeError extends Error {
  readonly code: RuntimeErrorCode;
  constructor(code: RuntimeErrorCode, message: string) {
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'RuntimeError';
    this.code = code;
  }
}
