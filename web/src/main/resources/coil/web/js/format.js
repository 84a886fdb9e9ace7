// Numbers as the page shows them.

const integers = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function formatInteger(value) {
  return Number.isFinite(value) ? integers.format(value) : '–';
}

/** Milliseconds: one decimal under 10 ms, whole above, seconds from 10 s on. */
export function formatMillis(value) {
  if (!Number.isFinite(value)) return '–';
  if (value >= 10_000) return `${oneDecimal.format(value / 1000)} s`;
  return `${value < 10 ? oneDecimal.format(value) : integers.format(value)} ms`;
}

export function formatRate(tokensPerSecond) {
  if (!Number.isFinite(tokensPerSecond) || tokensPerSecond <= 0) return '–';
  return `${tokensPerSecond < 10 ? oneDecimal.format(tokensPerSecond) : integers.format(tokensPerSecond)} tok/s`;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${oneDecimal.format(bytes / 1024)} KB`;
  return `${oneDecimal.format(bytes / 1024 / 1024)} MB`;
}
