package dev.coil.engine.runner;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * How one request picks its tokens and when it stops. Values are validated here, at the boundary, with
 * messages that start with the parameter's name as the OpenAI API spells it ("top_p must be in (0, 1], got
 * 1.5"), so the HTTP server can return them as 400 errors unchanged.
 *
 * <p>Build with {@link #builder()} (defaults: the OpenAI ones, temperature 1 and every filter off) or
 * {@link #greedy()}, and derive variants with the {@code withX} methods.
 *
 * @param temperature divides the logits; 0 means greedy (argmax), and so does any temperature below
 *                    {@link #GREEDY_BELOW}, which is stored as 0
 * @param topK keep the k most likely tokens; 0 turns it off (-1, vLLM's spelling of off, is accepted too)
 * @param topP keep the smallest set of most likely tokens whose probabilities sum to at least topP; 1 is off
 * @param minP drop tokens less likely than minP times the most likely one; 0 is off
 * @param repetitionPenalty HF-style penalty on every token already in the prompt or output; 1 is off
 * @param presencePenalty OpenAI: subtracted once from the logit of each token already generated
 * @param frequencyPenalty OpenAI: subtracted from each generated token's logit per time it was generated
 * @param seed seeds the request's random generator; null draws a random seed
 * @param stopTokenIds generation ends with any of these, which is output like any token (its text unless it is a
 *        special token and skipSpecialTokens, its logprob, counted in usage) and named as the finish's stop
 *        token (vLLM's stop_token_ids); the model's end-of-sequence tokens end generation without these, left
 *        out of the output
 * @param stopStrings generation ends at any of these strings; they are not part of the output unless
 *        includeStopStringInOutput
 * @param maxTokens most tokens to generate; {@link #UNLIMITED_TOKENS} lets the context length decide
 * @param minTokens vLLM's min_tokens: until this many tokens are generated, the model's end-of-sequence tokens
 *        and the stop token ids cannot be drawn, and stop strings are not looked for; 0 is off
 * @param includeStopStringInOutput vLLM's include_stop_str_in_output: the stop string that ended generation
 *        ends the output text
 * @param skipSpecialTokens vLLM's skip_special_tokens: leave special tokens' text out of the output text (the
 *        default, as transformers decodes); false spells them out
 * @param grammar what the output is held to, token by token (OpenAI's response_format json_object and
 *        json_schema, vLLM's structured outputs), or null for free text
 * @param logitBias OpenAI's logit_bias: per token id, a number in [-100, 100] added to its logit before the
 *        penalties and every other step (as vLLM applies it); -100 all but bans a token, 100 all but forces it
 * @param allowedTokenIds vLLM's allowed_token_ids: when not empty, every other token gets -infinity before
 *        anything else (the end-of-sequence tokens too, unless listed); empty allows all
 * @param badWords vLLM's bad_words, as token sequences: a sequence's last token gets -infinity whenever the
 *        tokens generated so far end with the rest of it (a one-token sequence always), so that no
 *        sequence is ever generated whole
 * @param thinkingBudget vLLM's thinking_token_budget (llama.cpp's reasoning budget): at most this many tokens
 *        inside a reasoning block, then its end tag is forced; null for none
 */
public record SamplingParams(
        double temperature,
        int topK,
        double topP,
        double minP,
        double repetitionPenalty,
        double presencePenalty,
        double frequencyPenalty,
        Long seed,
        Set<Integer> stopTokenIds,
        List<String> stopStrings,
        int maxTokens,
        int minTokens,
        boolean includeStopStringInOutput,
        boolean skipSpecialTokens,
        OutputGrammar grammar,
        Map<Integer, Float> logitBias,
        Set<Integer> allowedTokenIds,
        List<List<Integer>> badWords,
        ThinkingBudget thinkingBudget) {

    /** The largest |bias| logit_bias takes, as OpenAI's API bounds it. */
    public static final float MAX_LOGIT_BIAS = 100f;

    /** maxTokens when the request sets no limit: generation runs until a stop or the end of the context. */
    public static final int UNLIMITED_TOKENS = Integer.MAX_VALUE;

    /**
     * Temperatures below this draw as greedy, as vLLM's do: dividing logits by 1e-320 overflows float
     * arithmetic to NaN weights, and anything this small picks the argmax anyway but for exact ties.
     */
    public static final double GREEDY_BELOW = 1e-5;

    public SamplingParams {
        requireNumber("temperature", temperature);
        require(temperature >= 0 && !Double.isInfinite(temperature),
                "temperature must be a finite number >= 0 (0 is greedy), got " + temperature);
        if (temperature < GREEDY_BELOW) {
            temperature = 0;
        }
        if (topK == -1) {
            topK = 0;
        }
        require(topK >= 0, "top_k must be >= -1 (-1 and 0 turn it off), got " + topK);
        requireNumber("top_p", topP);
        require(topP > 0 && topP <= 1, "top_p must be in (0, 1], got " + topP);
        requireNumber("min_p", minP);
        require(minP >= 0 && minP <= 1, "min_p must be in [0, 1], got " + minP);
        requireNumber("repetition_penalty", repetitionPenalty);
        require(repetitionPenalty > 0 && !Double.isInfinite(repetitionPenalty),
                "repetition_penalty must be a finite number > 0 (1 turns it off), got " + repetitionPenalty);
        requireNumber("presence_penalty", presencePenalty);
        require(presencePenalty >= -2 && presencePenalty <= 2,
                "presence_penalty must be in [-2, 2], got " + presencePenalty);
        requireNumber("frequency_penalty", frequencyPenalty);
        require(frequencyPenalty >= -2 && frequencyPenalty <= 2,
                "frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
        require(stopTokenIds != null, "stop_token_ids must not be null");
        for (Integer id : stopTokenIds) {
            require(id != null && id >= 0, "stop_token_ids must hold non-negative token ids, got " + id);
        }
        require(stopStrings != null, "stop must not be null");
        for (String stop : stopStrings) {
            require(stop != null && !stop.isEmpty(), "stop must not contain an empty string");
        }
        require(maxTokens >= 0, "max_tokens must be >= 0, got " + maxTokens);
        require(minTokens >= 0, "min_tokens must be >= 0, got " + minTokens);
        require(minTokens <= maxTokens, "min_tokens must be <= max_tokens (" + maxTokens + "), got " + minTokens);
        require(logitBias != null, "logit_bias must not be null");
        for (Map.Entry<Integer, Float> bias : logitBias.entrySet()) {
            require(bias.getKey() != null && bias.getKey() >= 0,
                    "logit_bias must map non-negative token ids, got " + bias.getKey());
            Float value = bias.getValue();
            require(value != null && value >= -MAX_LOGIT_BIAS && value <= MAX_LOGIT_BIAS,
                    "logit_bias values must be in [-100, 100], got " + value + " for token " + bias.getKey());
        }
        require(allowedTokenIds != null, "allowed_token_ids must not be null");
        for (Integer id : allowedTokenIds) {
            require(id != null && id >= 0, "allowed_token_ids must hold non-negative token ids, got " + id);
        }
        require(badWords != null, "bad_words must not be null");
        for (List<Integer> word : badWords) {
            require(word != null && !word.isEmpty(), "bad_words must not hold a word of no tokens");
            for (Integer id : word) {
                require(id != null && id >= 0, "bad_words must be non-negative token ids, got " + id);
            }
        }
        allowedTokenIds = Set.copyOf(allowedTokenIds);
        badWords = badWords.stream().map(List::copyOf).toList();
        stopTokenIds = Set.copyOf(stopTokenIds);
        stopStrings = List.copyOf(stopStrings);
        logitBias = Collections.unmodifiableSortedMap(new TreeMap<>(logitBias));
    }

    /** The OpenAI defaults: temperature 1, no filters, no penalties, random seed, no stops, no token limit. */
    public static Builder builder() {
        return new Builder();
    }

    /** Argmax decoding, otherwise the defaults. */
    public static SamplingParams greedy() {
        return builder().temperature(0).build();
    }

    /** A builder holding these values. */
    public Builder toBuilder() {
        return new Builder()
                .temperature(temperature)
                .topK(topK)
                .topP(topP)
                .minP(minP)
                .repetitionPenalty(repetitionPenalty)
                .presencePenalty(presencePenalty)
                .frequencyPenalty(frequencyPenalty)
                .seed(seed)
                .stopTokenIds(stopTokenIds)
                .stopStrings(stopStrings)
                .maxTokens(maxTokens)
                .minTokens(minTokens)
                .includeStopStringInOutput(includeStopStringInOutput)
                .skipSpecialTokens(skipSpecialTokens)
                .grammar(grammar)
                .logitBias(logitBias)
                .allowedTokenIds(allowedTokenIds)
                .badWords(badWords)
                .thinkingBudget(thinkingBudget);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public SamplingParams withTemperature(double value) {
        return toBuilder().temperature(value).build();
    }

    public SamplingParams withTopK(int value) {
        return toBuilder().topK(value).build();
    }

    public SamplingParams withTopP(double value) {
        return toBuilder().topP(value).build();
    }

    public SamplingParams withMinP(double value) {
        return toBuilder().minP(value).build();
    }

    public SamplingParams withRepetitionPenalty(double value) {
        return toBuilder().repetitionPenalty(value).build();
    }

    public SamplingParams withPresencePenalty(double value) {
        return toBuilder().presencePenalty(value).build();
    }

    public SamplingParams withFrequencyPenalty(double value) {
        return toBuilder().frequencyPenalty(value).build();
    }

    public SamplingParams withSeed(Long value) {
        return toBuilder().seed(value).build();
    }

    public SamplingParams withStopTokenIds(Set<Integer> value) {
        return toBuilder().stopTokenIds(value).build();
    }

    public SamplingParams withStopStrings(List<String> value) {
        return toBuilder().stopStrings(value).build();
    }

    public SamplingParams withMaxTokens(int value) {
        return toBuilder().maxTokens(value).build();
    }

    public SamplingParams withMinTokens(int value) {
        return toBuilder().minTokens(value).build();
    }

    public SamplingParams withIncludeStopStringInOutput(boolean value) {
        return toBuilder().includeStopStringInOutput(value).build();
    }

    public SamplingParams withSkipSpecialTokens(boolean value) {
        return toBuilder().skipSpecialTokens(value).build();
    }

    public SamplingParams withGrammar(OutputGrammar value) {
        return toBuilder().grammar(value).build();
    }

    public SamplingParams withLogitBias(Map<Integer, Float> value) {
        return toBuilder().logitBias(value).build();
    }

    public SamplingParams withAllowedTokenIds(Set<Integer> value) {
        return toBuilder().allowedTokenIds(value).build();
    }

    public SamplingParams withBadWords(List<List<Integer>> value) {
        return toBuilder().badWords(value).build();
    }

    public SamplingParams withThinkingBudget(ThinkingBudget value) {
        return toBuilder().thinkingBudget(value).build();
    }

    private static void requireNumber(String name, double value) {
        require(!Double.isNaN(value), name + " must be a number, got NaN");
    }

    private static void require(boolean condition, String message) {
        if (!condition) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private double temperature = 1;
        private int topK = 0;
        private double topP = 1;
        private double minP = 0;
        private double repetitionPenalty = 1;
        private double presencePenalty = 0;
        private double frequencyPenalty = 0;
        private Long seed;
        private Set<Integer> stopTokenIds = Set.of();
        private List<String> stopStrings = List.of();
        private int maxTokens = UNLIMITED_TOKENS;
        private int minTokens = 0;
        private boolean includeStopStringInOutput = false;
        private boolean skipSpecialTokens = true;
        private OutputGrammar grammar;
        private Map<Integer, Float> logitBias = Map.of();
        private Set<Integer> allowedTokenIds = Set.of();
        private List<List<Integer>> badWords = List.of();
        private ThinkingBudget thinkingBudget;

        private Builder() {
        }

        public Builder temperature(double value) {
            temperature = value;
            return this;
        }

        public Builder topK(int value) {
            topK = value;
            return this;
        }

        public Builder topP(double value) {
            topP = value;
            return this;
        }

        public Builder minP(double value) {
            minP = value;
            return this;
        }

        public Builder repetitionPenalty(double value) {
            repetitionPenalty = value;
            return this;
        }

        public Builder presencePenalty(double value) {
            presencePenalty = value;
            return this;
        }

        public Builder frequencyPenalty(double value) {
            frequencyPenalty = value;
            return this;
        }

        public Builder seed(Long value) {
            seed = value;
            return this;
        }

        public Builder stopTokenIds(Set<Integer> value) {
            stopTokenIds = value;
            return this;
        }

        public Builder stopStrings(List<String> value) {
            stopStrings = value;
            return this;
        }

        public Builder maxTokens(int value) {
            maxTokens = value;
            return this;
        }

        public Builder minTokens(int value) {
            minTokens = value;
            return this;
        }

        public Builder includeStopStringInOutput(boolean value) {
            includeStopStringInOutput = value;
            return this;
        }

        public Builder skipSpecialTokens(boolean value) {
            skipSpecialTokens = value;
            return this;
        }

        /** What the output is held to; null (the default) for free text. */
        public Builder grammar(OutputGrammar value) {
            grammar = value;
            return this;
        }

        public Builder logitBias(Map<Integer, Float> value) {
            logitBias = value;
            return this;
        }

        /** vLLM's allowed_token_ids; empty (the default) allows every token. */
        public Builder allowedTokenIds(Set<Integer> value) {
            allowedTokenIds = value;
            return this;
        }

        /** vLLM's bad_words as token sequences; none by default. */
        public Builder badWords(List<List<Integer>> value) {
            badWords = value;
            return this;
        }

        /** vLLM's thinking_token_budget; null (the default) for none. */
        public Builder thinkingBudget(ThinkingBudget value) {
            thinkingBudget = value;
            return this;
        }

        public SamplingParams build() {
            return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, presencePenalty,
                    frequencyPenalty, seed, stopTokenIds, stopStrings, maxTokens, minTokens,
                    includeStopStringInOutput, skipSpecialTokens, grammar, logitBias, allowedTokenIds, badWords,
                    thinkingBudget);
        }
    }
}
