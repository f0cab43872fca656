// The gateway's public API, read relative to the page (so the page works under any prefix).
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-cache' });
  } catch (err) {
    throw new ApiError(0, 'unreachable', String(err && err.message));
  }
  const text = await response.text();
  if (text.length > 4 << 20) throw new ApiError(response.status, 'oversized', 'answer over 4 MiB');
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'bad_answer', 'the answer is not JSON');
  }
  if (!response.ok) throw new ApiError(response.status, body.code || 'error', body.detail || response.statusText);
  return body;
}
