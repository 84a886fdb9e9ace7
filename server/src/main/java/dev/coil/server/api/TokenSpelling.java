package dev.coil.server.api;

import dev.coil.server.ServedModel;
import java.nio.charset.StandardCharsets;

/**
 * How logprobs spell a token: its text (special tokens as written; "token_id:ID" for a model without a
 * tokenizer), or, with vLLM's return_tokens_as_token_ids, always "token_id:ID", so that a client can
 * tell tokens whose text is not valid UTF-8 on its own apart.
 */
record TokenSpelling(ServedModel model, boolean asIds) {

    /** The request's return_tokens_as_token_ids (default false). */
    static TokenSpelling of(Fields fields, ServedModel model) {
        return new TokenSpelling(model, fields.bool("return_tokens_as_token_ids", false));
    }

    String of(int id) {
        return asIds ? "token_id:" + id : model.tokenText(id);
    }

    /**
     * The token's bytes, its own whichever way it is spelled: those of its text, or of part of a
     * character. Spelling ids with no model to read them from, the spelling's.
     */
    byte[] bytes(int id) {
        return model == null ? of(id).getBytes(StandardCharsets.UTF_8) : model.tokenBytes(id);
    }
}
