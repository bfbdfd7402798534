/** Network-level failures (the endpoint is not there), as opposed to API errors. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|ECONNABORTED)$/.test(code)
  ) {
    return true;
  }
  return error.name === 'TimeoutError' || /socket hang up|ECONNREFUSED|ECONNRESET/.test(error.message);
}
