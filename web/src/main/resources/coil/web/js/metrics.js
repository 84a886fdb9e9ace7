// The cache panel's figures, read from /metrics (Prometheus text). Names follow the server's
// OpenTelemetry instruments: coil.kv_blocks.in_use becomes coil_kv_blocks_in_use, counters end
// in _total.

/** Prometheus text → Map of metric name → [{labels, value}]. */
export function parsePrometheus(text) {
  const samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const label of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const list = samples.get(match[1]) ?? [];
    list.push({ labels, value: Number(match[4]) });
    samples.set(match[1], list);
  }
  return samples;
}

/** The sum of a metric's samples whose labels include {@code where}; null when it is absent. */
export function sumOf(samples, name, where = {}) {
  const list = samples.get(name);
  if (!list) return null;
  return list.filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

export function cacheFigures(samples) {
  return {
    kvBlocksInUse: sumOf(samples, 'coil_kv_blocks_in_use'),
    kvBlocksCapacity: sumOf(samples, 'coil_kv_blocks_capacity'),
    stateSlotsInUse: sumOf(samples, 'coil_state_slots_in_use'),
    stateSlotsCapacity: sumOf(samples, 'coil_state_slots_capacity'),
    running: sumOf(samples, 'coil_requests_running'),
    waiting: sumOf(samples, 'coil_requests_waiting'),
    prefixQueries: sumOf(samples, 'coil_prefix_cache_queries_total'),
    prefixHits: sumOf(samples, 'coil_prefix_cache_hits_total'),
    prefixQueriedTokens: sumOf(samples, 'coil_prefix_cache_queried_tokens_total'),
    prefixHitTokens: sumOf(samples, 'coil_prefix_cache_hit_tokens_total'),
    cancelled: sumOf(samples, 'coil_requests_total', { finish_reason: 'cancelled' }),
  };
}
