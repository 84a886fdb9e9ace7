// The API key dialog: asks, and answers with what was typed (null when cancelled).

import { $ } from './dom.js';

export function askForKey(reason) {
  return new Promise((resolve) => {
    const dialog = $('key-dialog');
    $('key-reason').textContent = `${reason} The key stays in this tab only (sessionStorage).`;
    $('key-input').value = '';
    dialog.addEventListener('close', () => {
      const typed = $('key-input').value.trim();
      resolve(dialog.returnValue === 'save' && typed ? typed : null);
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('key-input').focus();
  });
}

/** The header's key button: set, replace or forget the key; onChange runs after a new key. */
export function bindKeyButton(api, onChange) {
  $('key-button').addEventListener('click', async () => {
    const typed = await askForKey(api.key ? 'A key is set for this tab; type another to replace it.'
      : 'Type the key the server was started with (--api-key or COIL_API_KEY).');
    if (typed) {
      api.key = typed;
      onChange();
    }
  });
  $('key-forget').addEventListener('click', () => {
    api.key = null;
    $('key-dialog').close('cancel');
  });
  $('key-cancel').addEventListener('click', () => $('key-dialog').close('cancel'));
}
