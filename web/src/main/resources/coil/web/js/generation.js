// One streamed request: the body for the mode, the SSE chunks read as they come, and what the
// last chunks carry (finish reason, usage with the prefix-cache hit, Coil's timings and paths).

import { ApiError } from './api.js';
import { readEvents } from './sse.js';

export const ENDPOINTS = { chat: '/v1/chat/completions', completion: '/v1/completions' };

/**
 * @param mode       'chat' or 'completion'
 * @param parameters the sampling fields from the form
 * @param input      {messages} for chat, {prompt} for completion
 */
export function requestBody(mode, parameters, input) {
  const body = mode === 'chat' ? { messages: input.messages } : { prompt: input.prompt };
  return { ...body, ...parameters, stream: true, stream_options: { include_usage: true } };
}

/**
 * Streams a generation, calling onText with each piece of text as it arrives, and onReasoning with
 * each piece of a chat answer's reasoning (the server's --reasoning-parser splits it off). Resolves
 * with {text, reasoning, finishReason, stopReason, timings, paths, usage}; rejects with an ApiError
 * (before or during the stream) or the AbortError of the signal.
 */
export async function streamGeneration(api, mode, body, { signal, onText, onReasoning }) {
  const response = await api.fetch(ENDPOINTS[mode], { method: 'POST', body, signal });
  const result = { text: '', reasoning: '', finishReason: null, stopReason: null, timings: null, paths: null,
    usage: null };
  let done = false;
  for await (const event of readEvents(response, signal)) {
    if (event.data === '[DONE]') {
      done = true;
      break;
    }
    let chunk;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      throw new ApiError({ status: 200, message: `The stream sent an event that is not JSON: ${event.data.slice(0, 200)}` });
    }
    if (chunk.error) {
      throw ApiError.fromStreamEvent(chunk);
    }
    for (const choice of chunk.choices ?? []) {
      const thought = mode === 'chat' ? choice.delta?.reasoning ?? choice.delta?.reasoning_content : null;
      if (thought) {
        result.reasoning += thought;
        onReasoning?.(thought);
      }
      const piece = mode === 'chat' ? choice.delta?.content : choice.text;
      if (piece) {
        result.text += piece;
        onText(piece);
      }
      if (choice.finish_reason) {
        result.finishReason = choice.finish_reason;
        result.stopReason = choice.stop_reason ?? null;
      }
    }
    result.timings = chunk.timings ?? result.timings;
    result.paths = chunk.paths ?? result.paths;
    result.usage = chunk.usage ?? result.usage;
  }
  if (!done) {
    if (signal?.aborted) {
      throw new DOMException('The user stopped the generation.', 'AbortError');
    }
    throw new ApiError({ status: 200, message: 'The stream ended before [DONE]: the server closed the connection.' });
  }
  return result;
}
