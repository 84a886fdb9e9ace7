// The server's HTTP API as the page uses it: JSON in, OpenAI error objects out, and the API key.
// A 401 asks the person for the key once (every request that meets it meanwhile waits for the
// same answer), keeps it in sessionStorage for this tab, and retries.

const KEY_STORAGE = 'coil.apiKey';

/** An answer that is not a result: an OpenAI error object, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor({ status, message, type = null, param = null, code = null }) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  /** An error sent as an SSE event after the 200: {"error": {...}}. */
  static fromStreamEvent(body) {
    const error = body.error ?? {};
    return new ApiError({ status: 200, message: error.message ?? JSON.stringify(body), type: error.type,
      param: error.param, code: error.code });
  }
}

/** Reads the error out of a failed response: the OpenAI shape when present, else its text. */
async function errorOf(response) {
  const text = await response.text().catch(() => '');
  try {
    const error = JSON.parse(text).error;
    if (error && typeof error.message === 'string') {
      return new ApiError({ status: response.status, message: error.message, type: error.type ?? null,
        param: error.param ?? null, code: error.code ?? null });
    }
  } catch {
    // not JSON: a proxy's page or a plain-text error
  }
  const snippet = text.trim().slice(0, 300);
  return new ApiError({ status: response.status,
    message: `${response.status} ${response.statusText}${snippet ? `: ${snippet}` : ''}` });
}

export class Api {
  #askForKey;
  #pendingAsk = null;

  /** @param askForKey async (reason) => the key the person typed, or null when they declined */
  constructor(askForKey) {
    this.#askForKey = askForKey;
  }

  get key() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  set key(value) {
    if (value) {
      sessionStorage.setItem(KEY_STORAGE, value);
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
  }

  /**
   * Sends a request and returns the response when it is a success.
   *
   * @param options.body        sent as JSON
   * @param options.signal      an AbortSignal; aborting rejects with the DOMException 'AbortError'
   * @param options.interactive whether a 401 may ask for the key (background reads don't)
   */
  async fetch(path, { method = 'GET', body, signal, interactive = true } = {}) {
    for (let asked = false; ; asked = true) {
      const headers = { Accept: 'application/json, text/event-stream, text/plain' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
      }
      const key = this.key;
      if (key) {
        headers.Authorization = `Bearer ${key}`;
      }
      let response;
      try {
        response = await fetch(path, { method, headers, signal,
          body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (error) {
        if (error.name === 'AbortError') {
          throw error;
        }
        throw new ApiError({ status: 0, type: 'network_error',
          message: `Could not reach the server (${error.message}). Is coil serve still running?` });
      }
      if (response.ok) {
        return response;
      }
      const error = await errorOf(response);
      if (response.status !== 401 || !interactive || asked) {
        throw error;
      }
      const typed = await this.#ask(key ? 'The server refused this key.' : error.message);
      if (!typed) {
        throw error;
      }
    }
  }

  async json(path, options) {
    const response = await this.fetch(path, options);
    return response.json();
  }

  async text(path, options) {
    const response = await this.fetch(path, options);
    return response.text();
  }

  /** One question at a time: concurrent 401s share the answer. */
  #ask(reason) {
    if (!this.#pendingAsk) {
      this.#pendingAsk = this.#askForKey(reason).then((typed) => {
        this.#pendingAsk = null;
        if (typed) {
          this.key = typed;
        }
        return typed;
      });
    }
    return this.#pendingAsk;
  }
}
