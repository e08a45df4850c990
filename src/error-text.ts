/** What a caught value says, for a log line or an error message: an Error's message, else its string. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
