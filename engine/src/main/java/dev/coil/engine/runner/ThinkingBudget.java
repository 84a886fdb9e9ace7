package dev.coil.engine.runner;

/**
 * vLLM's thinking_token_budget, llama.cpp's reasoning budget: each reasoning block of a request runs at
 * most {@code tokens} tokens. Counting starts after {@code startTag} appears in the output, or at the
 * first token when the prompt leaves a reasoning block open ({@code startsInside}); when the count
 * reaches the budget before {@code endTag} came, the tokens of {@code endTag} are forced one by one
 * (after the character the last token began, if any, is finished), and the answer goes on from there;
 * a block the output opens again later counts anew. Detected in the output's text, however the model
 * spells the tags.
 *
 * @param tokens the most tokens inside the block, 0 or more (0: the block ends as soon as it starts)
 * @param startTag the text that opens a reasoning block, as "&lt;think&gt;"
 * @param endTag the text that closes it, as "&lt;/think&gt;"; its tokens are what is forced
 * @param startsInside whether the prompt leaves the output inside a block already
 */
public record ThinkingBudget(int tokens, String startTag, String endTag, boolean startsInside) {

    public ThinkingBudget {
        if (tokens < 0) {
            throw new IllegalArgumentException("thinking_token_budget must be >= 0, got " + tokens);
        }
        if (startTag == null || startTag.isEmpty() || endTag == null || endTag.isEmpty()) {
            throw new IllegalArgumentException("a thinking budget needs the reasoning block's start and end tags");
        }
    }
}
