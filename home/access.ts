/**
 * Who may talk to the home: loopback only unless a token guards it, and never another site's
 * page in the user's browser.
 */

export const DEFAULT_HOME_HOST = '127.0.0.1';
/** Shortest token accepted: guessing one must not be practical. */
export const MIN_TOKEN_LENGTH = 16;

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why these settings may not serve, or undefined when they may: another host than loopback
 * needs a token, and a token must be long enough.
 */
export function checkHomeAccess(host: string, token: string | undefined): string | undefined {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    return `the home token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 16)`;
  }
  if (!isLoopback(host) && token === undefined) {
    return `the home would listen on ${host}, reachable from other machines, without a token: pass --token T (or HOME_TOKEN), or keep the default host ${DEFAULT_HOME_HOST}`;
  }
  return undefined;
}

/** A URL's host name without IPv6 brackets. */
function hostnameOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}

/**
 * Why a request must be refused although it reached the server, or undefined. Without a
 * token, the request must name a loopback host: a page on another site that re-points its
 * own name at 127.0.0.1 (DNS rebinding) names its own. A request that changes something must
 * not come from another origin's page (the browser's Origin header says so; scripts send none).
 */
export function refuseRequest(
  request: { url: string; method: string; origin: string | undefined },
  guarded: boolean,
): string | undefined {
  const host = hostnameOf(request.url);
  if (!guarded && (host === undefined || !isLoopback(host))) {
    return `this home answers only requests to a loopback address (127.0.0.1, localhost), not to ${JSON.stringify(host ?? '?')}`;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD' && request.origin !== undefined) {
    const self = new URL(request.url);
    let origin: URL | undefined;
    try {
      origin = new URL(request.origin);
    } catch {
      origin = undefined;
    }
    if (origin === undefined || origin.host !== self.host) {
      return `requests from another site's page (${request.origin.slice(0, 100)}) may not change anything here`;
    }
  }
  return undefined;
}
