// The error box over the composer: the server's message as it sent it, then its parameter,
// type and code.

import { $ } from './dom.js';

$('error-close').addEventListener('click', hideError);

/** @param error an ApiError, or any Error with a message */
export function showError(error, title = null) {
  $('error').hidden = false;
  $('error-title').textContent = title ?? titleOf(error);
  $('error-message').textContent = error.message;
  const detail = [];
  if (error.param) detail.push(`parameter: ${error.param}`);
  if (error.type) detail.push(`type: ${error.type}`);
  if (error.code) detail.push(`code: ${error.code}`);
  $('error-detail').textContent = detail.join(' · ');
  $('error-detail').hidden = detail.length === 0;
}

export function hideError() {
  $('error').hidden = true;
}

function titleOf(error) {
  if (error.status === 0) return 'No connection';
  if (error.status === 200) return 'The server stopped the stream with an error';
  if (error.status === 401) return 'API key needed (401)';
  if (error.status > 0) return `The server refused the request (${error.status})`;
  return 'Error';
}
