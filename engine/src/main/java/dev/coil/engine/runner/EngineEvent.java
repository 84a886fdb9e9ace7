package dev.coil.engine.runner;

import java.util.List;

/** What a request's {@link RequestStream} delivers, in order: tokens, then exactly one Finished or Failed. */
public sealed interface EngineEvent {

    /**
     * The log-probability of the token at one position and, when asked, the most likely alternatives
     * there (most likely first).
     */
    record PositionLogprobs(TokenLogprob chosen, List<TokenLogprob> top) {
        public PositionLogprobs {
            top = List.copyOf(top);
        }
    }

    /**
     * Logprobs of the prompt tokens (prompt_logprobs / echo scoring), sent once before the first
     * token. Entry i belongs to prompt token i + 1; the first prompt token has none.
     */
    record PromptLogprobs(List<PositionLogprobs> positions) implements EngineEvent {
        public PromptLogprobs {
            positions = List.copyOf(positions);
        }
    }

    /**
     * One generated token. {@code text} is what became final with it: whole UTF-8 characters, held
     * back while it may be the start of a stop string, so it may be empty and a later token may
     * carry several tokens' text. The concatenated text of a request's tokens is its output.
     *
     * @param logprobs the token's logprob and alternatives, null when the request asked for none
     */
    record Token(int id, String text, PositionLogprobs logprobs) implements EngineEvent {
    }

    /**
     * The request is done. {@code text} is what was still held back at the end (usually empty).
     *
     * @param stopString the stop string that ended generation, or null
     * @param paths      the engine paths that served the request, e.g. [flash, ssd-scan, ssm-recurrence]
     */
    record Finished(String text, FinishReason reason, String stopString, Usage usage, RequestTimings timings,
            List<String> paths) implements EngineEvent {
        public Finished {
            paths = List.copyOf(paths);
        }
    }

    /**
     * The request ended without finishing: cancelled, or an error inside the engine. Other requests
     * are unaffected.
     */
    record Failed(Reason reason, String message) implements EngineEvent {
        public enum Reason {
            /** cancel() was called, or the engine shut down before it finished. */
            CANCELLED,
            /** The request could not be served (e.g. it needs more cache than exists). */
            REJECTED,
            /** An unexpected engine error while serving it. */
            ERROR
        }
    }

    /**
     * Token counts, as the OpenAI usage object spells them.
     *
     * @param cachedPromptTokens prompt tokens served from the prefix cache (not computed)
     */
    record Usage(int promptTokens, int completionTokens, int cachedPromptTokens) {
        public int totalTokens() {
            return promptTokens + completionTokens;
        }
    }
}
