package dev.coil.engine.runner;

import java.util.List;

/** What a request's {@link RequestStream} delivers, in order: tokens, then exactly one Finished or Failed. */
public sealed interface EngineEvent {

    /**
     * The log-probability of the token at one position and, when asked, the most likely alternatives
     * there (most likely first).
     *
     * @param rank the chosen token's rank there ({@link Sampler#rank}: 1 + the tokens more likely than
     *             it), for prompt positions; 0 where not computed (generated tokens)
     */
    record PositionLogprobs(TokenLogprob chosen, List<TokenLogprob> top, int rank) {
        public PositionLogprobs {
            top = List.copyOf(top);
        }

        /** A generated token's logprobs: its rank not computed. */
        public PositionLogprobs(TokenLogprob chosen, List<TokenLogprob> top) {
            this(chosen, top, 0);
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
     * @param decoded  what the token added to the decoded text, before any stop string held it back:
     *                 empty when it ends inside a UTF-8 character, the whole character on the token
     *                 that completes it. The decoded texts of the tokens before one add up to where
     *                 its text starts in the output (completions' text_offset), up to a stop string
     *                 that was cut off.
     * @param logprobs the token's logprob and alternatives, null when the request asked for none
     */
    record Token(int id, String text, String decoded, PositionLogprobs logprobs) implements EngineEvent {
    }

    /**
     * The request is done. {@code text} is what was still held back at the end (usually empty).
     *
     * @param stopString  the stop string that ended generation, or null
     * @param stopTokenId the id of {@link SamplingParams#stopTokenIds()} that ended generation (it was the
     *                    last Token event), or null; null too when the model's end-of-sequence token ended it
     * @param paths       the engine paths that served the request, e.g. [flash, ssd-scan, ssm-recurrence]
     */
    record Finished(String text, FinishReason reason, String stopString, Integer stopTokenId, Usage usage,
            RequestTimings timings, List<String> paths) implements EngineEvent {
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
            /**
             * The request's own constraints (allowed_token_ids, bad_words, min_tokens, the output's
             * grammar) left no token to generate next; the message names them.
             */
            NO_TOKEN_LEFT,
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
