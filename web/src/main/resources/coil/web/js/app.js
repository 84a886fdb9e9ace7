// The playground page: the mode, the conversation, sending and stopping. Chat mode keeps the
// conversation here and sends all of it each turn (the server's prefix cache makes the repeated
// part cheap); completion mode sends the prompt box as it is.

import { Api } from './api.js';
import { $ } from './dom.js';
import { hideError, showError } from './error-box.js';
import { acceptDrops, insertAtCursor, readTextFile } from './files.js';
import { formatInteger } from './format.js';
import { requestBody, streamGeneration } from './generation.js';
import { askForKey, bindKeyButton } from './key-dialog.js';
import { refreshCachePanel, showResponseFigures } from './panels.js';
import { Parameters } from './parameters.js';
import { TokenCounter } from './token-count.js';
import { showTokenCount, showTokenCountError } from './token-meter.js';
import { Transcript } from './transcript.js';

const MODE_STORAGE = 'coil.mode';
const SYSTEM_STORAGE = 'coil.system';
const METRICS_WHILE_STREAMING_MS = 1000;
/** A cancellation reaches the engine within a step; the cache panel is read again after this. */
const METRICS_AFTER_END_MS = 600;
/** Health and the cache panel while idle (other clients use the server too). */
const IDLE_REFRESH_MS = 5000;

const MODES = {
  chat: { role: 'Assistant', hint: "Messages go through the model's chat template.",
    placeholder: 'Message. Ctrl+Enter sends. Paste text or drop a file for long context.' },
  completion: { role: 'Completion', hint: 'The text is continued as it is, with no template.',
    placeholder: 'Text to continue. Ctrl+Enter sends. Paste text or drop a file for long context.' },
};

const state = {
  mode: MODES[localStorage.getItem(MODE_STORAGE)] ? localStorage.getItem(MODE_STORAGE) : 'chat',
  /** The chat so far, user and assistant turns; the system prompt is added when sending. */
  history: [],
  contextWindow: null,
  promptTokens: null,
  /** The AbortController of the generation in flight, or null. */
  running: null,
  metricsTimer: null,
};

const api = new Api(askForKey);
const transcript = new Transcript($('transcript'), $('empty-note'));
const parameters = new Parameters($('parameters'), () => renderTokenCount());
const counter = new TokenCounter(api, onTokenCount);
const promptBox = $('prompt');
const systemBox = $('system-prompt');
const refreshMetrics = () => refreshCachePanel(api);

bindKeyButton(api, () => loadModel());

// ---- model, health ----

async function loadModel() {
  try {
    const models = await api.json('/v1/models');
    const model = models.data?.[0];
    $('model-name').textContent = model?.id ?? 'no model';
    state.contextWindow = model?.max_model_len ?? null;
    $('context-window').textContent = state.contextWindow ? `${formatInteger(state.contextWindow)}-token context` : '';
    // Reads that failed for want of a key before this one asked for it get another go.
    recount();
    refreshMetrics();
  } catch (error) {
    if (error.status === 503) {
      $('model-name').textContent = 'loading the model…';
      setTimeout(loadModel, 1000);
    } else {
      $('model-name').textContent = 'model unknown';
      $('context-window').textContent = error.status === 401 ? '(API key needed)' : error.message;
    }
  }
}

async function checkHealth() {
  const health = $('health');
  try {
    const response = await fetch('/health', { cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    health.dataset.state = response.ok ? 'ok' : 'loading';
    health.title = `Server: ${body.status ?? response.status}`;
  } catch {
    health.dataset.state = 'down';
    health.title = 'Server: unreachable';
  }
}

// ---- mode ----

function setMode(mode) {
  state.mode = mode;
  localStorage.setItem(MODE_STORAGE, mode);
  for (const button of document.querySelectorAll('[data-mode]')) {
    button.setAttribute('aria-selected', String(button.dataset.mode === mode));
  }
  $('system-box').hidden = mode !== 'chat';
  $('mode-hint').textContent = MODES[mode].hint;
  promptBox.placeholder = MODES[mode].placeholder;
  recount();
}

for (const button of document.querySelectorAll('[data-mode]')) {
  button.addEventListener('click', () => setMode(button.dataset.mode));
}

// ---- token count ----

/** The conversation the next chat request would send. */
function chatMessages(draft) {
  const messages = [];
  if (systemBox.value.trim()) {
    messages.push({ role: 'system', content: systemBox.value });
  }
  messages.push(...state.history);
  if (draft) {
    messages.push({ role: 'user', content: draft });
  }
  return messages;
}

function recount() {
  const draft = promptBox.value;
  if (state.mode === 'chat') {
    const messages = chatMessages(draft);
    counter.schedule(messages.length ? { messages } : null);
  } else {
    counter.schedule(draft ? { prompt: draft } : null);
  }
}

function onTokenCount(answer) {
  if (answer.error) {
    state.promptTokens = null;
    showTokenCountError(answer.error);
    return;
  }
  state.promptTokens = answer.count;
  state.contextWindow = answer.maxModelLen ?? state.contextWindow;
  renderTokenCount();
}

function renderTokenCount() {
  showTokenCount(state.promptTokens, state.contextWindow, parameters.maxTokens() ?? 0);
}

promptBox.addEventListener('input', recount);
systemBox.addEventListener('input', () => {
  localStorage.setItem(SYSTEM_STORAGE, systemBox.value);
  recount();
});

// ---- files ----

async function insertFile(file) {
  try {
    const text = await readTextFile(file);
    const note = $('attach-note');
    note.textContent = insertAtCursor(promptBox, text, file);
    note.hidden = false;
    recount();
  } catch (error) {
    showError(error, 'File not inserted');
  }
}

$('file-input').addEventListener('change', (event) => {
  const [file] = event.target.files;
  if (file) insertFile(file);
  event.target.value = '';
});
acceptDrops($('drop-zone'), insertFile);

// ---- sending, stopping ----

function setRunning(controller) {
  state.running = controller;
  $('send').disabled = controller !== null;
  $('stop').disabled = controller === null;
  $('clear').disabled = controller !== null;
  document.body.classList.toggle('running', controller !== null);
  clearInterval(state.metricsTimer);
  if (controller) {
    state.metricsTimer = setInterval(refreshMetrics, METRICS_WHILE_STREAMING_MS);
  }
}

/** What the next request sends, or null when there is nothing to send. */
function nextInput(draft) {
  if (state.mode === 'chat') {
    return draft.trim() || state.history.length ? { messages: chatMessages(draft) } : null;
  }
  return draft ? { prompt: draft } : null;
}

async function send() {
  if (state.running) return;
  const draft = promptBox.value;
  const mode = state.mode;
  const input = nextInput(draft);
  if (!input) {
    promptBox.focus();
    return;
  }
  hideError();
  const body = requestBody(mode, parameters.values(), input);
  let userMessage = null;
  if (mode === 'chat' && draft) {
    userMessage = transcript.addUser(draft);
    promptBox.value = '';
    $('attach-note').hidden = true;
  }
  const view = transcript.addResponse(MODES[mode].role, mode === 'completion' ? draft : null);
  const controller = new AbortController();
  setRunning(controller);
  const remember = (answer) => {
    if (mode === 'chat') {
      if (draft) state.history.push({ role: 'user', content: draft });
      state.history.push({ role: 'assistant', content: answer });
    }
  };
  try {
    const result = await streamGeneration(api, mode, body, { signal: controller.signal,
      onText: (piece) => view.append(piece), onReasoning: (piece) => view.appendReasoning(piece) });
    view.finish(result, 'done');
    remember(result.text);
    showResponseFigures(result, 'done');
  } catch (error) {
    // Stop aborts the fetch; depending on when the abort lands, the body's reader rejects with the
    // AbortError or ends early (then the stream looks cut short): either way the user stopped it.
    if (error.name === 'AbortError' || controller.signal.aborted) {
      const partial = { paths: null, timings: null, usage: null, finishReason: null };
      view.finish(partial, 'stopped');
      remember(view.text);
      showResponseFigures(partial, 'stopped');
    } else {
      if (view.text) {
        view.fail(error.message);
      } else {
        view.remove();
      }
      if (userMessage) {
        userMessage.remove();
        if (!promptBox.value) promptBox.value = draft;
      }
      showError(error);
    }
  } finally {
    setRunning(null);
    recount();
    refreshMetrics();
    setTimeout(refreshMetrics, METRICS_AFTER_END_MS);
  }
}

function stop() {
  state.running?.abort();
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  send();
});
$('stop').addEventListener('click', stop);
$('clear').addEventListener('click', () => {
  state.history = [];
  transcript.clear();
  hideError();
  recount();
});
$('cache-refresh').addEventListener('click', refreshMetrics);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    send();
  } else if (event.key === 'Escape' && state.running && !$('key-dialog').open) {
    stop();
  }
});

// ---- start ----

systemBox.value = localStorage.getItem(SYSTEM_STORAGE) ?? '';
$('system-box').open = systemBox.value !== '';
setMode(state.mode);
checkHealth();
setInterval(() => {
  checkHealth();
  if (!state.running && document.visibilityState === 'visible') {
    refreshMetrics();
  }
}, IDLE_REFRESH_MS);
loadModel();
promptBox.focus();
