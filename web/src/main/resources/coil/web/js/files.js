// Text files for long context: read, checked, and inserted into a text box at the cursor.

import { formatBytes, formatInteger } from './format.js';

/** Larger files would make the text box sluggish; the server's body limit is smaller anyway (2 MB by default). */
const LARGEST_FILE_BYTES = 16 * 1024 * 1024;

/** Reads a file as text; rejects with a sentence when it is too large or not text. */
export async function readTextFile(file) {
  if (file.size > LARGEST_FILE_BYTES) {
    throw new Error(`${file.name} is ${formatBytes(file.size)}; the playground takes text files up to ${formatBytes(LARGEST_FILE_BYTES)}.`);
  }
  const text = await file.text();
  if (text.slice(0, 8192).includes('\u0000')) {
    throw new Error(`${file.name} looks like a binary file; drop or choose a text file.`);
  }
  return text;
}

/** Puts text at the cursor, on its own paragraph; returns a note saying what went in. */
export function insertAtCursor(box, text, file) {
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? start;
  const before = box.value.slice(0, start);
  const separator = before && !before.endsWith('\n\n') ? (before.endsWith('\n') ? '\n' : '\n\n') : '';
  box.setRangeText(`${separator}${text}\n\n`, start, end, 'end');
  box.focus();
  return `Inserted ${file.name} (${formatBytes(file.size)}, ${formatInteger(text.length)} characters).`;
}

/**
 * A file dropped on the zone goes to onFile; dropped anywhere else it is ignored rather than
 * opened in place of the page. While a file is dragged over the window, body has class "dragging".
 */
export function acceptDrops(zone, onFile) {
  let depth = 0;
  window.addEventListener('dragenter', (event) => {
    if ([...(event.dataTransfer?.types ?? [])].includes('Files')) {
      depth += 1;
      document.body.classList.add('dragging');
    }
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) document.body.classList.remove('dragging');
  });
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => {
    event.preventDefault();
    depth = 0;
    document.body.classList.remove('dragging');
    const [file] = event.dataTransfer?.files ?? [];
    if (file && zone.contains(event.target)) {
      onFile(file);
    }
  });
}
