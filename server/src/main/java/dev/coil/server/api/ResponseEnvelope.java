package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.RequestTimings;
import java.time.Instant;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * The parts of a response around its choices: id, object, created, model, usage, and Coil's
 * {@code timings} and {@code paths}.
 */
final class ResponseEnvelope {

    private final ResponseShape shape;
    private final String id;
    private final long created = Instant.now().getEpochSecond();
    private final String model;
    private final List<ChoiceState> choices;
    private final boolean usageInChunks;
    private final boolean continuousUsage;

    /**
     * @param usageInChunks   stream_options.include_usage: every chunk carries "usage": null until the last
     * @param continuousUsage vLLM's continuous_usage_stats: that "usage" is instead the chunk's choice's so far
     */
    ResponseEnvelope(ResponseShape shape, String model, List<ChoiceState> choices, boolean usageInChunks,
            boolean continuousUsage) {
        this.shape = shape;
        this.id = shape.idPrefix() + UUID.randomUUID().toString().replace("-", "");
        this.model = model;
        this.choices = choices;
        this.usageInChunks = usageInChunks;
        this.continuousUsage = continuousUsage;
    }

    String id() {
        return id;
    }

    /** The whole response of a non-streamed request. */
    ObjectNode response() {
        ObjectNode root = head(shape.responseObject());
        ArrayNode array = root.putArray("choices");
        choices.forEach(choice -> array.add(shape.choice(choice)));
        root.set("usage", usage());
        shape.addToResponse(root, choices);
        addExtras(root);
        return root;
    }

    /** One stream chunk around one choice object, {@code state}'s. */
    ObjectNode chunk(ObjectNode choice, ChoiceState state) {
        ObjectNode root = head(shape.chunkObject());
        root.putArray("choices").add(choice);
        if (continuousUsage) {
            // As vLLM counts it: the choice's prompt and the tokens it has generated so far.
            root.set("usage", counts(state.promptTokens().length, state.generatedTokens()));
        } else if (usageInChunks) {
            root.putNull("usage");
        }
        return root;
    }

    /** The last chunk when usage was asked for: no choices, the usage. */
    ObjectNode usageChunk() {
        ObjectNode root = head(shape.chunkObject());
        root.putArray("choices");
        root.set("usage", usage());
        return root;
    }

    /**
     * OpenAI's usage: each prompt counted once however many choices it has, every choice's output
     * counted; prompt tokens served from the prefix cache in prompt_tokens_details.cached_tokens.
     */
    ObjectNode usage() {
        int prompt = 0;
        int cached = 0;
        int completion = 0;
        Set<Integer> promptsCounted = new HashSet<>();
        for (ChoiceState choice : choices) {
            Finished finished = choice.finished();
            if (finished == null) {
                continue;
            }
            completion += finished.usage().completionTokens();
            if (promptsCounted.add(choice.promptIndex())) {
                prompt += finished.usage().promptTokens();
                cached += finished.usage().cachedPromptTokens();
            }
        }
        ObjectNode usage = counts(prompt, completion);
        usage.putObject("prompt_tokens_details").put("cached_tokens", cached);
        return usage;
    }

    /** OpenAI's token counts: prompt, completion and their total. */
    private static ObjectNode counts(int prompt, int completion) {
        ObjectNode usage = Json.object();
        usage.put("prompt_tokens", prompt);
        usage.put("completion_tokens", completion);
        usage.put("total_tokens", prompt + completion);
        return usage;
    }

    /**
     * Coil's extras: {@code timings} of the choice that took longest (with one choice, the
     * request's) and {@code paths}, the engine paths that served any choice.
     */
    void addExtras(ObjectNode root) {
        addExtras(root, choices);
    }

    /** {@link #addExtras(ObjectNode)} for any answer of {@code choices}. */
    static void addExtras(ObjectNode root, List<ChoiceState> choices) {
        Finished slowest = null;
        Set<String> paths = new LinkedHashSet<>();
        for (ChoiceState choice : choices) {
            Finished finished = choice.finished();
            if (finished == null) {
                continue;
            }
            paths.addAll(finished.paths());
            if (slowest == null || finished.timings().totalMillis() > slowest.timings().totalMillis()) {
                slowest = finished;
            }
        }
        if (slowest != null) {
            root.set("timings", timings(slowest));
        }
        ArrayNode array = root.putArray("paths");
        paths.forEach(array::add);
    }

    private static ObjectNode timings(Finished finished) {
        RequestTimings timings = finished.timings();
        ObjectNode node = Json.object();
        node.put("queue_ms", timings.queueMillis());
        node.put("prefill_ms", timings.prefillMillis());
        node.put("decode_ms", timings.decodeMillis());
        node.put("time_to_first_token_ms", timings.firstTokenMillis());
        node.put("total_ms", timings.totalMillis());
        node.put("prompt_tokens", finished.usage().promptTokens());
        node.put("cached_prompt_tokens", finished.usage().cachedPromptTokens());
        node.put("computed_prompt_tokens", timings.computedPromptTokens());
        node.put("generated_tokens", timings.generatedTokens());
        node.put("prefill_tokens_per_second", timings.prefillTokensPerSecond());
        node.put("decode_tokens_per_second", timings.decodeTokensPerSecond());
        return node;
    }

    private ObjectNode head(String object) {
        ObjectNode root = Json.object();
        root.put("id", id);
        root.put("object", object);
        root.put("created", created);
        root.put("model", model);
        return root;
    }
}
