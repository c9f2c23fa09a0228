// google.rpc.Code (googleapis/google/rpc/code.proto): the status codes ttRPC responses carry.
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type CodeName = keyof typeof Code;

/** The name of a google.rpc.Code ("NOT_FOUND"), or "CODE_<n>" for a number outside the enum. */
export function codeName(code: number): string {
  for (const [name, value] of Object.entries(Code)) if (value === code) return name;
  return `CODE_${code}`;
}
