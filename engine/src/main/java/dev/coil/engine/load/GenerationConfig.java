package dev.coil.engine.load;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The model's own generation defaults from generation_config.json. Every field is optional;
 * eos_token_id may be one id or a list (chat models often stop on several).
 */
public record GenerationConfig(
        List<Integer> eosTokenIds,
        OptionalInt bosTokenId,
        OptionalInt padTokenId,
        OptionalDouble temperature,
        OptionalDouble topP,
        OptionalInt topK,
        Optional<Boolean> doSample,
        OptionalDouble repetitionPenalty,
        OptionalDouble minP) {

    public static final GenerationConfig NONE = new GenerationConfig(List.of(), OptionalInt.empty(), OptionalInt.empty(),
            OptionalDouble.empty(), OptionalDouble.empty(), OptionalInt.empty(), Optional.empty(), OptionalDouble.empty(),
            OptionalDouble.empty());

    public GenerationConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    public static GenerationConfig from(JsonNode json) {
        return new GenerationConfig(
                Arrays.stream(ConfigJson.getInts(json, "eos_token_id")).boxed().toList(),
                optionalInt(json, "bos_token_id"),
                optionalInt(json, "pad_token_id"),
                optionalDouble(json, "temperature"),
                optionalDouble(json, "top_p"),
                optionalInt(json, "top_k"),
                ConfigJson.has(json, "do_sample") ? Optional.of(ConfigJson.getBoolean(json, "do_sample", false)) : Optional.empty(),
                optionalDouble(json, "repetition_penalty"),
                optionalDouble(json, "min_p"));
    }

    private static OptionalInt optionalInt(JsonNode json, String key) {
        return ConfigJson.has(json, key) ? OptionalInt.of(ConfigJson.getInt(json, key, 0)) : OptionalInt.empty();
    }

    private static OptionalDouble optionalDouble(JsonNode json, String key) {
        return ConfigJson.has(json, key) ? OptionalDouble.of(ConfigJson.getDouble(json, key, 0)) : OptionalDouble.empty();
    }
}
