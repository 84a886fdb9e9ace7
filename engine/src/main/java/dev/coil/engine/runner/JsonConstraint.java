package dev.coil.engine.runner;

import dev.coil.engine.tokenizer.Tokenizer;

/**
 * One request's output held to a JSON object (OpenAI's {@code response_format: {"type":
 * "json_object"}}): before each token is drawn, every token whose text {@link JsonGrammar} would
 * refuse at this point gets -infinity, and the request ends once the object closes. Special tokens
 * (end-of-sequence included) never fit inside the object; the end is the object's own.
 */
final class JsonConstraint {

    /** Per token id, its text alone; null for a token no JSON text holds (special, empty, past the tokenizer). */
    private final String[] texts;
    private final JsonGrammar state = new JsonGrammar();
    private final JsonGrammar scratch = new JsonGrammar();

    JsonConstraint(String[] texts) {
        this.texts = texts;
    }

    /**
     * Each token's text alone, as the constraint reads it: a byte-level token that holds part of a
     * character decodes to U+FFFD, which only a string takes, where the whole character belongs.
     */
    static String[] vocabularyTexts(Tokenizer tokenizer, int vocab) {
        String[] texts = new String[vocab];
        int known = Math.min(vocab, tokenizer.vocabSize());
        for (int id = 0; id < known; id++) {
            if (!tokenizer.isSpecial(id)) {
                String text = tokenizer.decode(new int[] {id}, false);
                texts[id] = text.isEmpty() ? null : text;
            }
        }
        return texts;
    }

    /** A copy of {@code logits} with -infinity for every token the grammar refuses next. */
    float[] mask(float[] logits) {
        float[] masked = logits.clone();
        for (int id = 0; id < masked.length; id++) {
            String text = id < texts.length ? texts[id] : null;
            if (text == null) {
                masked[id] = Float.NEGATIVE_INFINITY;
                continue;
            }
            scratch.copyFrom(state);
            if (!scratch.acceptAll(text)) {
                masked[id] = Float.NEGATIVE_INFINITY;
            }
        }
        return masked;
    }

    /** Moves past the token drawn from {@link #mask}'s logits. */
    void accept(int token) {
        if (token >= texts.length || texts[token] == null || !state.acceptAll(texts[token])) {
            throw new IllegalStateException("token " + token + " does not continue the JSON object");
        }
    }

    /** Whether the object has closed. */
    boolean complete() {
        return state.complete();
    }
}
