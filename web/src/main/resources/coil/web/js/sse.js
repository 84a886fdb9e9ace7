// Server-Sent Events, parsed as the HTML standard's event-stream rules say: lines end in
// CRLF, LF or CR; a line starting with ':' is a comment; "field: value" drops one space after
// the colon; data lines of one event join with '\n'; a blank line ends the event. Text may be
// cut anywhere between push() calls, even between the CR and LF of one line end.

export class SseParser {
  #buffer = '';
  #pendingCarriageReturn = false;
  #data = [];
  #eventType = '';
  #lastEventId = '';

  /** Feeds decoded text; returns the events it completed, as {type, data, id}. */
  push(text) {
    if (this.#pendingCarriageReturn && text.startsWith('\n')) {
      text = text.slice(1);
    }
    this.#pendingCarriageReturn = false;
    this.#buffer += text;
    const events = [];
    let start = 0;
    for (;;) {
      const end = this.#nextLineEnd(start);
      if (end < 0) {
        break;
      }
      const line = this.#buffer.slice(start, end);
      if (this.#buffer[end] === '\r') {
        if (end + 1 === this.#buffer.length) {
          this.#pendingCarriageReturn = true;
          start = end + 1;
        } else {
          start = this.#buffer[end + 1] === '\n' ? end + 2 : end + 1;
        }
      } else {
        start = end + 1;
      }
      const event = this.#line(line);
      if (event) {
        events.push(event);
      }
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  /** The stream ended: an event without its closing blank line is dropped, as the standard says. */
  end() {
    this.#buffer = '';
    this.#data = [];
    this.#eventType = '';
    return [];
  }

  #nextLineEnd(from) {
    const lf = this.#buffer.indexOf('\n', from);
    const cr = this.#buffer.indexOf('\r', from);
    if (lf < 0) return cr;
    if (cr < 0) return lf;
    return Math.min(lf, cr);
  }

  #line(line) {
    if (line === '') {
      return this.#dispatch();
    }
    if (line.startsWith(':')) {
      return null;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'data': this.#data.push(value); break;
      case 'event': this.#eventType = value; break;
      case 'id': if (!value.includes('\0')) this.#lastEventId = value; break;
      default: break; // "retry" and unknown fields do not matter to a fetch reader
    }
    return null;
  }

  #dispatch() {
    if (this.#data.length === 0) {
      this.#eventType = '';
      return null;
    }
    const event = { type: this.#eventType || 'message', data: this.#data.join('\n'), id: this.#lastEventId };
    this.#data = [];
    this.#eventType = '';
    return event;
  }
}

/**
 * The events of a fetch response's body as they arrive, until the body ends or {@code signal} aborts. Bytes are decoded as a stream, so a
 * character split across network reads comes out whole.
 */
export async function* readEvents(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  let finished = false;
  // Aborting the fetch should error the body, but through the decoder a pending read can stay
  // pending; cancelling the reader on abort always ends it.
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      yield* parser.push(value);
    }
    yield* parser.end();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) {
      // The reader stopped early ([DONE], an error event, or an abort): let go of the connection.
      reader.cancel().catch(() => {});
    }
  }
}
