// The side panels: the last response's paths and speeds, and the cache panel read from /metrics.

import { $ } from './dom.js';
import { formatInteger, formatMillis, formatRate } from './format.js';
import { cacheFigures, parsePrometheus } from './metrics.js';
import { pathChips } from './transcript.js';

/**
 * @param result  what generation.js collected (timings, paths, usage, finish reason)
 * @param outcome 'done' or 'stopped'
 */
export function showResponseFigures(result, outcome) {
  const paths = $('paths');
  paths.replaceChildren();
  if (result.paths?.length) {
    paths.append(pathChips(result.paths));
  } else {
    paths.innerHTML = '<span class="muted">–</span>';
  }
  const t = result.timings;
  $('stat-ttft').textContent = t ? formatMillis(t.time_to_first_token_ms) : '–';
  $('stat-prefill').textContent = t ? formatRate(t.prefill_tokens_per_second) : '–';
  $('stat-decode').textContent = t ? formatRate(t.decode_tokens_per_second) : '–';
  $('stat-finish').textContent = outcome === 'stopped' ? 'stopped' : result.finishReason ?? '–';
  $('stat-tokens').textContent = t
    ? `${formatInteger(t.computed_prompt_tokens)} prompt tokens computed in ${formatMillis(t.prefill_ms)}`
      + (t.cached_prompt_tokens ? ` (${formatInteger(t.cached_prompt_tokens)} more from the cache)` : '')
      + ` · ${formatInteger(t.generated_tokens)} generated in ${formatMillis(t.decode_ms)}`
      + (t.queue_ms >= 1 ? ` · ${formatMillis(t.queue_ms)} queued` : '')
    : outcome === 'stopped' ? 'Stopped: the server cancels the request when the connection closes.' : '';
  const usage = result.usage;
  const cached = usage?.prompt_tokens_details?.cached_tokens ?? t?.cached_prompt_tokens;
  const prompt = usage?.prompt_tokens ?? t?.prompt_tokens;
  $('prefix-request').textContent = Number.isFinite(cached) && Number.isFinite(prompt)
    ? `${formatInteger(cached)} of ${formatInteger(prompt)} tokens cached`
    : '–';
}

/** KV blocks and state slots in use, prefix-cache hits, requests running and cancelled. */
export async function refreshCachePanel(api) {
  let figures;
  try {
    figures = cacheFigures(parsePrometheus(await api.text('/metrics', { interactive: false })));
  } catch (error) {
    $('kv-blocks').textContent = error.status === 401 ? 'API key needed' : 'unavailable';
    return;
  }
  gauge('kv-blocks', 'kv-bar', figures.kvBlocksInUse, figures.kvBlocksCapacity);
  gauge('state-slots', 'slots-bar', figures.stateSlotsInUse, figures.stateSlotsCapacity);
  $('prefix-server').textContent = figures.prefixQueries === null ? '–'
    : `${formatInteger(figures.prefixHits)} of ${formatInteger(figures.prefixQueries)} lookups`;
  $('prefix-tokens').textContent = figures.prefixQueriedTokens === null ? '–'
    : `${formatInteger(figures.prefixHitTokens)} of ${formatInteger(figures.prefixQueriedTokens)}`;
  $('requests-now').textContent = figures.running === null ? '–'
    : `${formatInteger(figures.running)} running · ${formatInteger(figures.waiting ?? 0)} waiting`;
  const cancelled = $('requests-cancelled');
  cancelled.textContent = formatInteger(figures.cancelled ?? 0);
  cancelled.dataset.count = String(figures.cancelled ?? 0);
}

function gauge(labelId, barId, inUse, capacity) {
  $(labelId).textContent = inUse === null ? '–'
    : capacity ? `${formatInteger(inUse)} / ${formatInteger(capacity)}` : formatInteger(inUse);
  $(barId).style.width = capacity ? `${Math.min(100, (100 * inUse) / capacity)}%` : '0%';
}
