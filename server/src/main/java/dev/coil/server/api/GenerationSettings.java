package dev.coil.server.api;

import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.OutputGrammar;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.ThinkingBudget;
import dev.coil.server.SamplingDefaults;
import dev.coil.server.ServedModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * What /v1/completions and /v1/chat/completions share: how to sample, when to stop, how many
 * choices, and whether to stream.
 *
 * @param sampling     the sampling values of choice 0; choice i samples with seed + i when a seed is given
 * @param choices      n: choices per prompt
 * @param stream       answer with Server-Sent Events
 * @param includeUsage stream_options.include_usage: a last chunk with the usage and no choices
 * @param continuousUsage vLLM's stream_options.continuous_usage_stats (with include_usage): every chunk
 *                     carries its choice's usage so far
 * @param ignoreEos    vLLM's ignore_eos: generate past the model's end-of-sequence tokens
 * @param promptLogprobs vLLM's prompt_logprobs: -1 not asked, else each prompt token's logprob, rank
 *                     and this many most likely tokens (not with stream, as vLLM)
 * @param returnTokenIds vLLM's return_token_ids: the prompt's and each choice's token ids beside the text
 * @param priority     vLLM's priority: under --scheduling-policy priority, lower runs sooner
 * @param cacheSalt    vLLM's cache_salt: prompts share cached prefixes only with requests of the same salt; or null
 */
record GenerationSettings(SamplingParams sampling, int choices, boolean stream, boolean includeUsage,
        boolean continuousUsage, boolean ignoreEos, int promptLogprobs, boolean returnTokenIds, int priority,
        String cacheSalt) {

    /** The same settings with {@code value} as the sampling parameters. */
    GenerationSettings withSampling(SamplingParams value) {
        return new GenerationSettings(value, choices, stream, includeUsage, continuousUsage, ignoreEos, promptLogprobs,
                returnTokenIds, priority, cacheSalt);
    }

    /**
     * vLLM's thinking_token_budget of the request, an integer >= 0, or null when it has none; a 400
     * without a reasoning parser, which names the block's tags.
     */
    static Integer thinkingTokenBudget(Fields fields, ReasoningFormat reasoningParser) {
        Integer budget = fields.integer("thinking_token_budget", 0, Integer.MAX_VALUE);
        if (budget != null && reasoningParser == null) {
            throw ApiException.invalid("thinking_token_budget", "thinking_token_budget needs the server's "
                    + "--reasoning-parser, which names the reasoning block's tags");
        }
        return budget;
    }

    /**
     * These settings with at most {@code budget} tokens inside the block {@code reasoningParser}'s tags
     * mark, then its end tag forced; counting from the first token where the prompt opens the block.
     */
    GenerationSettings withThinkingBudget(int budget, ReasoningFormat reasoningParser, boolean promptOpensBlock) {
        return withSampling(sampling.withThinkingBudget(new ThinkingBudget(budget, reasoningParser.startTag(),
                reasoningParser.endTag(), promptOpensBlock)));
    }

    /** Most choices one request may ask for (OpenAI's limit on n). */
    static final int MAX_CHOICES = 128;

    /**
     * Reads the shared fields.
     *
     * @param maxTokens the max_tokens value this API resolved (its own names and default), or
     *                  {@link SamplingParams#UNLIMITED_TOKENS}
     * @param model the served model: stop_token_ids, allowed_token_ids and logit_bias's keys must be ids in
     *              its vocabulary, and its tokenizer reads bad_words
     */
    static GenerationSettings parse(Fields fields, int maxTokens, ServedModel model) {
        return parse(fields, maxTokens, model, null);
    }

    /**
     * As {@link #parse(Fields, int, int)}, for a chat request with tools: a tool_choice that calls a
     * function holds the answer to its grammar.
     *
     * @param tools the chat request's tools, or null (completions, or a chat without tools)
     */
    static GenerationSettings parse(Fields fields, int maxTokens, ServedModel model, ToolCalls tools) {
        int vocabSize = model.vocabSize();
        rejectUnsupported(fields, tools != null);
        OutputGrammar grammar = StructuredOutput.parse(fields);
        if (tools != null && tools.calls()) {
            if (grammar != null) {
                throw ApiException.invalid("tool_choice", "a tool_choice that calls a function holds the answer "
                        + "to the function's parameters; give it or a structured output, not both");
            }
            grammar = tools.grammar();
        }
        int choices = fields.integer("n", 1, MAX_CHOICES, 1);
        if (fields.has("best_of") && fields.integer("best_of", 1, MAX_CHOICES) != choices) {
            throw ApiException.invalid("best_of", "best_of is not supported; leave it out or equal to n");
        }
        boolean stream = fields.bool("stream", false);
        boolean includeUsage = false;
        boolean continuousUsage = false;
        var streamOptions = fields.object("stream_options");
        if (streamOptions != null) {
            if (!stream) {
                throw ApiException.invalid("stream_options", "stream_options is only allowed when stream is true");
            }
            Fields options = new Fields(streamOptions);
            includeUsage = options.bool("include_usage", false);
            continuousUsage = options.bool("continuous_usage_stats", false) && includeUsage;
        }
        fields.string("user");
        fields.string("model");
        SamplingParams sampling;
        try {
            // The fields left out get the model's generation_config.json values (vLLM's --generation-config auto).
            SamplingDefaults defaults = model.samplingDefaults();
            sampling = SamplingParams.builder()
                    .temperature(fields.number("temperature", defaults.temperature()))
                    .topP(fields.number("top_p", defaults.topP()))
                    .topK(fields.integer("top_k", -1, Integer.MAX_VALUE, defaults.topK()))
                    .minP(fields.number("min_p", defaults.minP()))
                    .repetitionPenalty(fields.number("repetition_penalty", defaults.repetitionPenalty()))
                    .presencePenalty(fields.number("presence_penalty", 0.0))
                    .frequencyPenalty(fields.number("frequency_penalty", 0.0))
                    .seed(fields.longInteger("seed"))
                    .stopStrings(fields.stringOrStrings("stop"))
                    .stopTokenIds(new HashSet<>(fields.integers("stop_token_ids", 0, vocabSize - 1)))
                    .maxTokens(maxTokens)
                    .minTokens(fields.integer("min_tokens", 0, Integer.MAX_VALUE, 0))
                    .includeStopStringInOutput(fields.bool("include_stop_str_in_output", false))
                    .skipSpecialTokens(fields.bool("skip_special_tokens", tools == null || tools.autoFormat() == null))
                    .grammar(grammar)
                    .logitBias(fields.tokenBiases("logit_bias", vocabSize, SamplingParams.MAX_LOGIT_BIAS))
                    .allowedTokenIds(allowedTokenIds(fields, vocabSize))
                    .badWords(badWords(fields, model))
                    .build();
        } catch (IllegalArgumentException e) {
            throw ErrorResponses.fromEngine(e, "prompt");
        }
        Integer promptLogprobs = fields.integer("prompt_logprobs", 0, EngineRequest.MAX_TOP_LOGPROBS);
        if (promptLogprobs != null && stream) {
            throw ApiException.invalid("prompt_logprobs", "prompt_logprobs is not available with stream (as in vLLM); "
                    + "a streamed completion with echo and logprobs sends the prompt's logprobs first");
        }
        return new GenerationSettings(sampling, choices, stream, includeUsage, continuousUsage,
                fields.bool("ignore_eos", false), promptLogprobs == null ? -1 : promptLogprobs,
                fields.bool("return_token_ids", false), priority(fields, model), cacheSalt(fields));
    }

    /** vLLM's allowed_token_ids: ids in the vocabulary, at least one when given. */
    private static Set<Integer> allowedTokenIds(Fields fields, int vocabSize) {
        List<Integer> ids = fields.integers("allowed_token_ids", 0, vocabSize - 1);
        if (fields.has("allowed_token_ids") && ids.isEmpty()) {
            throw ApiException.invalid("allowed_token_ids", "allowed_token_ids must hold at least one token id");
        }
        return new HashSet<>(ids);
    }

    /**
     * vLLM's bad_words, each as the tokens of the word (leading whitespace dropped) and, where they
     * differ, of the word after a space, so that it is forbidden at the start of the text and after a
     * space alike.
     */
    private static List<List<Integer>> badWords(Fields fields, ServedModel model) {
        List<String> words = fields.stringOrStrings("bad_words");
        if (words.isEmpty()) {
            return List.of();
        }
        if (!model.hasTokenizer()) {
            throw ApiException.invalid("bad_words", "bad_words needs the model's tokenizer, and this model has none");
        }
        List<List<Integer>> sequences = new ArrayList<>();
        for (String word : words) {
            String bare = word.stripLeading();
            if (bare.isEmpty()) {
                throw ApiException.invalid("bad_words", "bad_words must not hold an empty word");
            }
            List<Integer> plain = Arrays.stream(model.encode(bare, false)).boxed().toList();
            List<Integer> spaced = Arrays.stream(model.encode(" " + bare, false)).boxed().toList();
            sequences.add(plain);
            if (!spaced.equals(plain)) {
                sequences.add(spaced);
            }
        }
        return sequences;
    }

    /**
     * vLLM's truncate_prompt_tokens: how many of a prompt's last tokens to keep (left truncation), -1
     * for the context window; {@link Integer#MAX_VALUE} (keep all) when absent.
     */
    static int promptTokensKept(Fields fields, int contextLength) {
        Integer kept = fields.integer("truncate_prompt_tokens", -1, Integer.MAX_VALUE);
        if (kept == null) {
            return Integer.MAX_VALUE;
        }
        if (kept == 0) {
            throw ApiException.invalid("truncate_prompt_tokens",
                    "truncate_prompt_tokens must be -1 (the context window) or >= 1, got 0");
        }
        return kept == -1 ? contextLength : kept;
    }

    /** The last {@code kept} of {@code tokens} (all of them when they are no more). */
    static int[] lastTokens(int[] tokens, int kept) {
        return tokens.length <= kept ? tokens : Arrays.copyOfRange(tokens, tokens.length - kept, tokens.length);
    }

    /** The max_tokens field of either API: an integer >= 0, or the default when absent. */
    static int maxTokens(Fields fields, String name, int defaultValue) {
        return fields.integer(name, 0, Integer.MAX_VALUE, defaultValue);
    }

    /**
     * The engine request for one choice of one prompt.
     *
     * @param logprobs       per generated token: -1 none, 0 the chosen token's, k also the top k
     * @param promptLogprobs per prompt token, the same way
     */
    EngineRequest request(int[] prompt, int choice, int logprobs, int promptLogprobs) {
        SamplingParams params = sampling.seed() == null || choice == 0 ? sampling
                : sampling.withSeed(sampling.seed() + choice);
        return new EngineRequest(prompt, params, ignoreEos, logprobs, promptLogprobs, priority, cacheSalt);
    }

    /** vLLM's cache_salt: a non-empty string, or null when left out. */
    private static String cacheSalt(Fields fields) {
        String salt = fields.string("cache_salt");
        if (salt != null && salt.isEmpty()) {
            throw ApiException.invalid("cache_salt", "cache_salt must be a non-empty string when given");
        }
        return salt;
    }

    /** vLLM's priority: any integer under priority scheduling (lower runs sooner), else 0 only. */
    private static int priority(Fields fields, ServedModel model) {
        int priority = fields.integer("priority", Integer.MIN_VALUE, Integer.MAX_VALUE, 0);
        if (priority != 0 && !model.engine().options().priorityScheduling()) {
            throw ApiException.invalid("priority", "priority must be 0 (or left out): this server schedules first come "
                    + "first served; start it with --scheduling-policy priority");
        }
        return priority;
    }

    /** Fields of OpenAI's API that Coil does not implement; refusing them beats silently ignoring them. */
    private static void rejectUnsupported(Fields fields, boolean toolsRead) {
        for (String name : toolsRead ? List.of("functions") : List.of("tools", "functions")) {
            var value = fields.get(name);
            if (value != null && !(value.isContainerNode() && value.isEmpty())) {
                throw ApiException.invalid(name, name + " is not supported by this server");
            }
        }
        if (fields.has("suffix") && !fields.string("suffix").isEmpty()) {
            throw ApiException.invalid("suffix", "suffix is not supported by this server");
        }
    }
}
