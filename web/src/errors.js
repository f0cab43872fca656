// An answer that is not the data asked for: `code` is the server's stable problem code.
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

// The JSON body of an answer, read whole and bounded (an answer over 4 MiB is no answer
// these pages ask for).
export async function readJson(response) {
  const text = await response.text();
  if (text.length > 4 << 20) throw new ApiError(response.status, 'oversized', 'answer over 4 MiB');
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'bad_answer', 'the answer is not JSON');
  }
}
