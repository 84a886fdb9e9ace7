// The live prompt size: what the next request would send, counted by the server's /tokenize
// (the model's own tokenizer and chat template) a short pause after the last keystroke. Only
// the newest count is shown; an older one still in flight is aborted.

const PAUSE_MS = 250;

export class TokenCounter {
  #api;
  #onCount;
  #timer = null;
  #inFlight = null;
  #generation = 0;

  /**
   * @param onCount called with {count, maxModelLen} or {error}
   */
  constructor(api, onCount) {
    this.#api = api;
    this.#onCount = onCount;
  }

  /** @param body the /tokenize body for the current input ({prompt} or {messages}), or null for nothing */
  schedule(body) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#count(body), PAUSE_MS);
  }

  async #count(body) {
    const generation = ++this.#generation;
    this.#inFlight?.abort();
    if (body === null) {
      this.#onCount({ count: 0, maxModelLen: null });
      return;
    }
    const controller = new AbortController();
    this.#inFlight = controller;
    try {
      const answer = await this.#api.json('/tokenize', { method: 'POST', body, signal: controller.signal,
        interactive: false });
      if (generation === this.#generation) {
        this.#onCount({ count: answer.count, maxModelLen: answer.max_model_len });
      }
    } catch (error) {
      if (error.name !== 'AbortError' && generation === this.#generation) {
        this.#onCount({ error });
      }
    }
  }
}
