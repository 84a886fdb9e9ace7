package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServedModel;
import java.util.ArrayList;
import java.util.List;

/**
 * One prompt of /v1/completions: its token ids and its text (what echo puts before the output).
 * The {@code prompt} field is a string, an array of token ids, or a batch (an array) of either.
 */
record CompletionPrompt(int[] tokens, String text) {

    /** Most prompts in one batch. */
    static final int MAX_PROMPTS = 128;

    static List<CompletionPrompt> parse(Fields fields, ServedModel model) {
        JsonNode prompt = fields.get("prompt");
        if (prompt == null) {
            throw ApiException.invalid("prompt", "prompt is required: a string, an array of token ids, or an array of either");
        }
        List<CompletionPrompt> prompts = new ArrayList<>();
        if (prompt.isTextual()) {
            prompts.add(ofText(prompt.textValue(), model));
        } else if (prompt.isArray() && !prompt.isEmpty() && prompt.get(0).isNumber()) {
            prompts.add(ofTokens(prompt, model));
        } else if (prompt.isArray() && !prompt.isEmpty()) {
            if (prompt.size() > MAX_PROMPTS) {
                throw ApiException.invalid("prompt", "prompt: at most " + MAX_PROMPTS + " prompts per request, got "
                        + prompt.size());
            }
            for (JsonNode item : prompt) {
                if (item.isTextual()) {
                    prompts.add(ofText(item.textValue(), model));
                } else if (item.isArray()) {
                    prompts.add(ofTokens(item, model));
                } else {
                    throw ApiException.invalid("prompt", "prompt: a batch holds strings or arrays of token ids, not "
                            + Fields.typeName(item));
                }
            }
        } else if (prompt.isArray()) {
            throw ApiException.invalid("prompt", "prompt must not be an empty array");
        } else {
            throw ApiException.invalid("prompt", "prompt must be a string, an array of token ids, or an array of "
                    + "either, got " + Fields.typeName(prompt));
        }
        return prompts;
    }

    /**
     * This prompt's last {@code kept} tokens (vLLM's truncate_prompt_tokens); a shortened prompt echoes
     * the text of the tokens it kept.
     */
    CompletionPrompt lastTokens(int kept, ServedModel model) {
        if (tokens.length <= kept) {
            return this;
        }
        int[] last = GenerationSettings.lastTokens(tokens, kept);
        return new CompletionPrompt(last, model.hasTokenizer() ? model.decode(last, true) : "");
    }

    private static CompletionPrompt ofText(String text, ServedModel model) {
        if (!model.hasTokenizer()) {
            throw ApiException.invalid("prompt", "prompt: this model has no tokenizer.json, so prompts must be "
                    + "arrays of token ids");
        }
        int[] tokens = model.encode(text, true);
        if (tokens.length == 0) {
            throw ApiException.invalid("prompt", "prompt must not be empty");
        }
        return new CompletionPrompt(tokens, text);
    }

    private static CompletionPrompt ofTokens(JsonNode array, ServedModel model) {
        if (array.isEmpty()) {
            throw ApiException.invalid("prompt", "prompt must not be empty");
        }
        int[] tokens = new int[array.size()];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = (int) Fields.integerValue("prompt", array.get(i), 0, model.vocabSize() - 1);
        }
        String text = model.hasTokenizer() ? model.decode(tokens, true) : "";
        return new CompletionPrompt(tokens, text);
    }
}
