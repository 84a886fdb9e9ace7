package dev.coil.server.cli;

import dev.coil.engine.runner.LoadedModel;
import java.util.Arrays;
import picocli.CommandLine.Option;

/** Exactly one of --prompt TEXT or --prompt-ids 1,2,3. */
public final class PromptOptions {

    @Option(names = "--prompt", paramLabel = "TEXT", description = "Prompt text, tokenized with the model's tokenizer.")
    String text;

    @Option(names = "--prompt-ids", paramLabel = "IDS", split = ",", description = "Prompt as comma-separated token ids.")
    int[] ids;

    public int[] tokens(LoadedModel model) {
        if ((text == null) == (ids == null)) {
            throw new IllegalArgumentException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
        }
        int[] tokens = ids != null ? ids : model.encode(text);
        if (tokens.length == 0) {
            throw new IllegalArgumentException("the prompt is empty");
        }
        int vocab = model.config().vocabSize();
        for (int id : tokens) {
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("token id " + id + " in --prompt-ids is outside the vocabulary [0, "
                        + vocab + ")");
            }
        }
        return Arrays.copyOf(tokens, tokens.length);
    }
}
