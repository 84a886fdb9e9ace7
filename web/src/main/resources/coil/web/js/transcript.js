// The conversation as the page shows it: messages, responses growing token by token, and under
// each response the figures the server reported for it.

import { formatInteger, formatMillis, formatRate } from './format.js';

/** Longer texts (a pasted document) show their start and end until asked for all of it. */
const FOLD_OVER = 1200;

const PATH_DESCRIPTIONS = {
  flash: 'flash attention over the prompt (key tiles, online softmax)',
  'ssd-scan': 'chunked SSD scan over the prompt (Mamba-2 layers)',
  'ssm-recurrence': 'Mamba-2 recurrence, one token per step (decode)',
};

export function describePath(path) {
  if (PATH_DESCRIPTIONS[path]) return PATH_DESCRIPTIONS[path];
  const ring = /^ring x(\d+)$/.exec(path);
  if (ring) return `context sharded over ${ring[1]} devices by ring attention (context parallelism)`;
  return path;
}

export function pathChips(paths) {
  const fragment = document.createDocumentFragment();
  for (const path of paths ?? []) {
    const chip = document.createElement('span');
    chip.className = 'chip';
    chip.textContent = path;
    chip.title = describePath(path);
    fragment.append(chip);
  }
  return fragment;
}

export class Transcript {
  #element;
  #emptyNote;

  constructor(element, emptyNote) {
    this.#element = element;
    this.#emptyNote = emptyNote;
  }

  clear() {
    this.#element.replaceChildren(this.#emptyNote);
    this.#emptyNote.hidden = false;
  }

  addUser(text) {
    const message = this.#append('message user', 'You');
    message.append(foldedText(text, 'content'));
    this.#scroll(true);
    return message;
  }

  /** A chat answer or a completion; completions show their prompt, dimmed, before the output. */
  addResponse(role, promptText = null) {
    const element = this.#append('message response', role);
    element.dataset.state = 'streaming';
    const body = document.createElement('div');
    body.className = 'content';
    if (promptText !== null) {
      body.append(foldedText(promptText, 'prompt-echo'));
    }
    const output = document.createElement('span');
    output.className = 'output';
    const text = document.createTextNode('');
    output.append(text);
    const caret = document.createElement('span');
    caret.className = 'caret';
    body.append(output, caret);
    const reasoning = new ReasoningView(body);
    const stats = document.createElement('div');
    stats.className = 'stats';
    stats.textContent = 'waiting for the first token…';
    element.append(body, stats);
    this.#scroll(true);
    return new ResponseView(element, text, caret, stats, reasoning, () => this.#scroll(false));
  }

  #append(className, role) {
    this.#emptyNote.hidden = true;
    const element = document.createElement('article');
    element.className = className;
    const label = document.createElement('div');
    label.className = 'role';
    label.textContent = role;
    element.append(label);
    this.#element.append(element);
    return element;
  }

  /** Follows the bottom unless the reader scrolled up to read. */
  #scroll(force) {
    const box = this.#element;
    if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 80) {
      box.scrollTop = box.scrollHeight;
    }
  }
}

/**
 * A chat answer's reasoning, shown above the answer in a block of its own that the reader can fold;
 * made when the first piece of reasoning arrives.
 */
class ReasoningView {
  #body;
  #text = null;

  constructor(body) {
    this.#body = body;
  }

  append(delta) {
    if (this.#text === null) {
      const block = document.createElement('details');
      block.className = 'reasoning';
      block.open = true;
      const summary = document.createElement('summary');
      summary.textContent = 'Reasoning';
      const thought = document.createElement('div');
      thought.className = 'reasoning-text';
      this.#text = document.createTextNode('');
      thought.append(this.#text);
      block.append(summary, thought);
      this.#body.prepend(block);
    }
    this.#text.appendData(delta);
  }
}

export class ResponseView {
  #element;
  #text;
  #caret;
  #stats;
  #reasoning;
  #followed;
  #pieces = 0;

  constructor(element, text, caret, stats, reasoning, followed) {
    this.#element = element;
    this.#text = text;
    this.#caret = caret;
    this.#stats = stats;
    this.#reasoning = reasoning;
    this.#followed = followed;
  }

  /** One streamed piece (a token's text) goes on the screen at once. */
  append(delta) {
    this.#text.appendData(delta);
    this.#counted();
  }

  /** One streamed piece of reasoning, into the reasoning block above the answer. */
  appendReasoning(delta) {
    this.#reasoning.append(delta);
    this.#counted();
  }

  #counted() {
    this.#pieces += 1;
    this.#stats.textContent = `${formatInteger(this.#pieces)} tokens…`;
    this.#followed();
  }

  get text() {
    return this.#text.data;
  }

  /** @param result what generation.js collected: timings, paths, usage, finish reason */
  finish(result, state) {
    this.#element.dataset.state = state;
    this.#caret.remove();
    this.#stats.replaceChildren();
    this.#stats.append(pathChips(result.paths));
    const t = result.timings;
    const parts = [];
    if (t) {
      parts.push(`TTFT ${formatMillis(t.time_to_first_token_ms)}`);
      parts.push(`prefill ${formatRate(t.prefill_tokens_per_second)}`);
      parts.push(`decode ${formatRate(t.decode_tokens_per_second)}`);
      parts.push(`${formatInteger(t.generated_tokens)} tokens`);
    } else if (this.#pieces) {
      parts.push(`${formatInteger(this.#pieces)} tokens`);
    }
    if (state === 'stopped') {
      parts.push('stopped');
    } else if (result.finishReason) {
      parts.push(result.stopReason ? `${result.finishReason} (${JSON.stringify(result.stopReason)})` : result.finishReason);
    }
    const line = document.createElement('span');
    line.className = 'figures-line';
    line.textContent = parts.join(' · ');
    this.#stats.append(line);
    this.#followed();
  }

  fail(message) {
    this.#element.dataset.state = 'failed';
    this.#caret.remove();
    this.#stats.textContent = message;
    this.#stats.classList.add('failed');
  }

  remove() {
    this.#element.remove();
  }
}

function foldedText(text, className) {
  const element = document.createElement('div');
  element.className = className;
  if (text.length <= FOLD_OVER) {
    element.textContent = text;
    return element;
  }
  const head = text.slice(0, 700);
  const tail = text.slice(-250);
  const hidden = text.length - head.length - tail.length;
  const more = document.createElement('button');
  more.type = 'button';
  more.className = 'fold quiet small';
  more.textContent = `… ${formatInteger(hidden)} more characters (show all) …`;
  more.addEventListener('click', () => {
    element.textContent = text;
  });
  element.append(head, document.createElement('br'), more, document.createElement('br'), tail);
  return element;
}
