// The page's only way to the server: the JSON API of the home application. Every failure
// becomes an ApiError carrying the server's sentence, so the page can show it as is.

/** A failed API call: `status` is the HTTP status (0 when the server could not be reached). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** One API call; resolves to the JSON answer, rejects with an ApiError carrying the server's sentence. */
export async function request(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `the home server cannot be reached (${error instanceof Error ? error.message : String(error)})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the status line as the message below.
  }
  if (!response.ok) {
    const sentence = data && typeof data.error === 'string' ? data.error : `${method} ${path} answered ${response.status}`;
    throw new ApiError(response.status, sentence);
  }
  return data;
}

/** Query string of the set (non-empty) parameters. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const api = {
  status: () => request('GET', '/api/status'),
  frames: (params) => request('GET', `/api/frames${query(params)}`),
  frame: (id) => request('GET', `/api/frames/${encodeURIComponent(id)}`),
  label: (frameId, label) => request('POST', '/api/labels', { frame_id: frameId, label }),
  bulk: (frameIds, label) => request('POST', '/api/labels/bulk', { frame_ids: frameIds, label }),
  undo: (frameId) => request('POST', '/api/labels/undo', frameId === undefined ? {} : { frame_id: frameId }),
  dataset: () => request('GET', '/api/dataset'),
  exportDataset: (dir) => request('POST', '/api/dataset/export', dir ? { dir } : {}),
  metrics: (since) => request('GET', `/api/metrics${query({ since })}`),
  confusion: () => request('GET', '/api/confusion'),
  rejected: () => request('GET', '/api/rejected'),
  retention: () => request('GET', '/api/retention'),
};
