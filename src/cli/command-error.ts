/**
 * A command that refuses to go on for a reason the operator must act on (not a bug, not a bad
 * configuration): main prints its message as one `berth: …` line, without a stack, and exits 1.
 */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}
