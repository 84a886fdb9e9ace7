// The sampling parameters form. Values go to the server as typed: a field it cannot read as a
// number is sent as text, so that the server's own error names it. Empty fields are left out
// (the server's defaults apply). The form is remembered in localStorage.

const STORAGE = 'coil.parameters';

export class Parameters {
  #inputs;

  constructor(container, onChange) {
    this.#inputs = [...container.querySelectorAll('[data-kind]')];
    this.#restore();
    for (const input of this.#inputs) {
      input.addEventListener('input', () => {
        this.#save();
        onChange();
      });
    }
  }

  /** The request fields: temperature, top_p, top_k, max_tokens, seed, stop, ignore_eos, response_format. */
  values() {
    const values = {};
    for (const input of this.#inputs) {
      const value = readInput(input);
      if (value !== undefined) {
        values[input.name] = value;
      }
    }
    return values;
  }

  /** max_tokens when it is a whole number, else null (then the server decides). */
  maxTokens() {
    const value = this.values().max_tokens;
    return Number.isInteger(value) && value >= 0 ? value : null;
  }

  #save() {
    const saved = {};
    for (const input of this.#inputs) {
      saved[input.id] = input.type === 'checkbox' ? input.checked : input.value;
    }
    localStorage.setItem(STORAGE, JSON.stringify(saved));
  }

  #restore() {
    let saved;
    try {
      saved = JSON.parse(localStorage.getItem(STORAGE) ?? '{}') ?? {};
    } catch {
      return;
    }
    for (const input of this.#inputs) {
      if (!(input.id in saved)) continue;
      if (input.type === 'checkbox') {
        input.checked = saved[input.id] === true;
      } else if (typeof saved[input.id] === 'string') {
        input.value = saved[input.id];
      }
    }
  }
}

function readInput(input) {
  switch (input.dataset.kind) {
    case 'flag':
      return input.checked ? true : undefined;
    case 'schema': {
      // A schema the page cannot read as JSON goes as text, so that the server's error says why.
      const text = input.value.trim();
      if (text === '') return undefined;
      let schema = text;
      try {
        schema = JSON.parse(text);
      } catch {
        // sent as typed
      }
      return {type: 'json_schema', json_schema: {name: 'playground', schema}};
    }
    case 'lines': {
      const stops = input.value.split('\n').filter((line) => line !== '').map(unescape);
      return stops.length ? stops : undefined;
    }
    default: {
      const text = input.value.trim();
      if (text === '') return undefined;
      const number = Number(text);
      return Number.isFinite(number) ? number : text;
    }
  }
}

/** A stop string as typed: \n, \t and \\ stand for a newline, a tab and a backslash. */
function unescape(line) {
  return line.replace(/\\([nt\\])/g, (_, c) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}
