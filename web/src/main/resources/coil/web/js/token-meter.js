// The composer's meter: prompt tokens and the max-tokens reserve against the context window.

import { $ } from './dom.js';
import { formatInteger } from './format.js';

const WITHIN = "Prompt tokens (counted by the server's /tokenize) plus max tokens, against the context window";
const OVER = 'The prompt plus max tokens is larger than the context window: the server will refuse it. '
  + 'Lower max tokens or shorten the text.';

/**
 * @param count         prompt tokens, or null while unknown
 * @param contextWindow the model's context length, or null while unknown
 * @param reserve       max tokens (0 when the server decides)
 */
export function showTokenCount(count, contextWindow, reserve) {
  const label = $('token-count');
  if (count === null) return;
  label.dataset.count = String(count);
  const over = contextWindow !== null && count + reserve > contextWindow;
  label.classList.toggle('over', over);
  label.textContent = contextWindow
    ? `${formatInteger(count)} / ${formatInteger(contextWindow)} tokens${reserve ? ` (+${formatInteger(reserve)} max)` : ''}`
    : `${formatInteger(count)} tokens`;
  label.parentElement.title = over ? OVER : WITHIN;
  const share = (n) => (contextWindow ? Math.min(100, (100 * n) / contextWindow) : 0);
  $('token-bar').style.width = `${share(count)}%`;
  $('token-reserve').style.width = `${Math.max(0, Math.min(100 - share(count), share(reserve)))}%`;
}

export function showTokenCountError(error) {
  const label = $('token-count');
  label.dataset.count = '';
  label.textContent = error.status === 401 ? 'tokens: API key needed' : `tokens: ${error.message}`;
  label.classList.add('over');
}
