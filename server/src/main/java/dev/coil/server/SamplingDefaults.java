package dev.coil.server;

import dev.coil.engine.load.GenerationConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The sampling values a request gets for the fields it leaves out: OpenAI's neutral ones (temperature 1,
 * top_p 1, no top_k, no min_p, repetition_penalty 1), or, as vLLM's {@code --generation-config auto}
 * has it, those the model's generation_config.json gives (temperature, top_p, top_k, min_p,
 * repetition_penalty; do_sample is read past, as vLLM reads it past).
 */
public record SamplingDefaults(double temperature, double topP, int topK, double minP, double repetitionPenalty) {

    public static final SamplingDefaults NEUTRAL = new SamplingDefaults(1.0, 1.0, 0, 0.0, 1.0);

    /** The model's defaults where its generation config gives them, the neutral ones elsewhere. */
    public static SamplingDefaults of(GenerationConfig config) {
        return new SamplingDefaults(config.temperature().orElse(NEUTRAL.temperature),
                config.topP().orElse(NEUTRAL.topP), config.topK().orElse(NEUTRAL.topK),
                config.minP().orElse(NEUTRAL.minP), config.repetitionPenalty().orElse(NEUTRAL.repetitionPenalty));
    }

    /** The values that differ from the neutral ones, as "temperature 0.6, top_p 0.95"; empty when none. */
    public String described() {
        List<String> given = new ArrayList<>();
        if (temperature != NEUTRAL.temperature) {
            given.add(String.format(Locale.ROOT, "temperature %s", temperature));
        }
        if (topP != NEUTRAL.topP) {
            given.add(String.format(Locale.ROOT, "top_p %s", topP));
        }
        if (topK != NEUTRAL.topK) {
            given.add("top_k " + topK);
        }
        if (minP != NEUTRAL.minP) {
            given.add(String.format(Locale.ROOT, "min_p %s", minP));
        }
        if (repetitionPenalty != NEUTRAL.repetitionPenalty) {
            given.add(String.format(Locale.ROOT, "repetition_penalty %s", repetitionPenalty));
        }
        return String.join(", ", given);
    }
}
