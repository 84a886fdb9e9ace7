package dev.coil.engine.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The reference fixtures made by tools/reference/make_fixtures.py with HF transformers: tiny random
 * checkpoints of each architecture (f32 unless named _bf16) and the logits transformers computed.
 */
public final class Fixtures {

    /** Every fixture model folder; each test runs over all of them. */
    public static final List<String> MODELS = List.of("mamba2", "granitemoehybrid", "granitemoehybrid_rope",
            "granitemoehybrid_moe", "granitemoehybrid_bf16", "granitemoehybrid_sharded", "bamba", "nemotron_h",
            "nemotron_h_moe", "nemotron_h_latent");

    private static final ObjectMapper JSON = new ObjectMapper();

    private Fixtures() {
    }

    /** The folder of a fixture; fails (never skips) when it is missing. */
    public static Path folder(String name) {
        URL url = Fixtures.class.getResource("/fixtures/" + name + "/config.json");
        if (url == null) {
            throw new IllegalStateException("fixture '" + name + "' is missing from engine/src/test/resources/fixtures; "
                    + "run tools/reference/make_fixtures.py");
        }
        try {
            return Path.of(url.toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Expected expected(String name) {
        try {
            return new Expected(JSON.readTree(Files.readString(folder(name).resolve("expected.json"))));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One prompt: logits at every prompt position, then cached greedy decode steps. */
    public record Case(int[] promptIds, float[][] prefillLogits, int[] decodeIds, float[][] decodeLogits) {
    }

    /** A prompt and the tokens transformers' greedy generate() produced after it. */
    public record Greedy(int[] promptIds, int[] generatedIds) {
    }

    public record Expected(JsonNode root) {
        public List<Case> cases() {
            List<Case> cases = new ArrayList<>();
            for (JsonNode item : root.get("cases")) {
                cases.add(new Case(ints(item.get("prompt_ids")), matrix(item.get("prefill_logits")),
                        ints(item.get("decode_ids")), matrix(item.get("decode_logits"))));
            }
            return cases;
        }

        public List<Greedy> greedy() {
            List<Greedy> runs = new ArrayList<>();
            for (JsonNode item : root.get("greedy")) {
                runs.add(new Greedy(ints(item.get("prompt_ids")), ints(item.get("generated_ids"))));
            }
            return runs;
        }
    }

    static int[] ints(JsonNode array) {
        int[] values = new int[array.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = array.get(i).asInt();
        }
        return values;
    }

    static float[][] matrix(JsonNode rows) {
        float[][] values = new float[rows.size()][];
        for (int r = 0; r < values.length; r++) {
            JsonNode row = rows.get(r);
            values[r] = new float[row.size()];
            for (int c = 0; c < values[r].length; c++) {
                values[r][c] = (float) row.get(c).asDouble();
            }
        }
        return values;
    }
}
