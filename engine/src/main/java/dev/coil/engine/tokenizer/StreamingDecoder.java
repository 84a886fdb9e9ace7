package dev.coil.engine.tokenizer;

import java.util.Arrays;

/**
 * Turns a stream of generated token ids into a stream of text deltas, one sequence per instance.
 *
 * <p>A token is not a unit of text: byte-level BPE splits a multi-byte UTF-8 character across tokens, and
 * decoders such as SentencePiece's depend on the previous token (a leading "▁" is a space except at the
 * start). So each step decodes a short window of ids twice, with and without the new ones, and emits the
 * difference:
 * <ol>
 *   <li>{@code before} = decode(ids[prefixStart, readStart)), the text already emitted for that window;
 *   <li>{@code after} = decode(ids[prefixStart, end)), the same window with the tokens not yet emitted;
 *   <li>if {@code after} ends in U+FFFD, the last tokens stop inside a character: emit nothing and wait;
 *   <li>otherwise emit {@code after} minus its {@code before} prefix and slide the window forward.
 * </ol>
 * Each window starts at a character boundary, so the deltas concatenate to the text of all ids. An
 * answer to a prompt that holds text goes on from that text ({@link #answering}): its first window
 * starts with the tokenizer's {@link Tokenizer#letterToken() letter token}, whose text is taken off
 * again, so that its first token reads as it does after the prompt, as decoding the prompt and the
 * answer together and taking the prompt's text off does. SentencePiece decoders drop a leading space at
 * a text's start, which would glue the first generated word to the prompt; byte-level decoders read
 * the same either way. After
 * the last token call {@link #flush()}, which emits whatever is still held back (a sequence that really ends
 * in an incomplete character decodes to U+FFFD, as the full decode does).
 *
 * <p>Not thread-safe; one instance per generated sequence.
 */
public final class StreamingDecoder {

    private static final char REPLACEMENT = '\uFFFD';

    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    /** The letter token, then the ids accepted; {@code first} is where they begin (0 or 1). */
    private int[] ids = new int[64];
    private final int first;
    private int length;
    /** First id of the decode window: the context that makes the next delta decode as in the full text. */
    private int prefixStart;
    /** First id whose text has not been emitted yet. */
    private int readStart;
    private boolean midCharacter;

    /** A decoder of a text from its start (a prompt's tokens, or an answer to no text). */
    public StreamingDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this(tokenizer, skipSpecialTokens, false);
    }

    /**
     * A decoder of the answer to {@code prompt}: it goes on from the prompt's text where the prompt has
     * any (a token that is not special, or any token when special tokens are not skipped), and reads
     * from a text's start where the prompt is special tokens alone (a BOS), as SentencePiece does
     * after BOS.
     */
    public static StreamingDecoder answering(Tokenizer tokenizer, int[] prompt, boolean skipSpecialTokens) {
        boolean promptHasText = false;
        for (int i = 0; i < prompt.length && !promptHasText; i++) {
            promptHasText = !skipSpecialTokens || !tokenizer.isSpecial(prompt[i]);
        }
        return new StreamingDecoder(tokenizer, skipSpecialTokens, promptHasText);
    }

    private StreamingDecoder(Tokenizer tokenizer, boolean skipSpecialTokens, boolean afterText) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
        if (afterText && tokenizer.letterToken() >= 0) {
            ids[length++] = tokenizer.letterToken();
        }
        first = length;
        readStart = length;
    }

    /**
     * Adds one generated id and returns the text it completes: possibly empty (the token ends inside a
     * multi-byte character, or is a skipped special token), possibly more than the token's own text (it
     * completes a character started by earlier tokens).
     */
    public String accept(int id) {
        if (length == ids.length) {
            ids = Arrays.copyOf(ids, 2 * length);
        }
        ids[length++] = id;
        String after = decodeRange(prefixStart, length);
        midCharacter = !after.isEmpty() && after.charAt(after.length() - 1) == REPLACEMENT;
        return midCharacter ? "" : emit(after);
    }

    /** Whether the last id accepted left a character half spelled: its bytes are held back. */
    public boolean midCharacter() {
        return midCharacter;
    }

    /** Emits the text still held back, at the end of the sequence. */
    public String flush() {
        return emit(decodeRange(prefixStart, length));
    }

    /** The ids accepted so far. */
    public int[] ids() {
        return Arrays.copyOfRange(ids, first, length);
    }

    /**
     * The part of {@code after} beyond the already emitted {@code before}; the window slides only when there
     * is one (a skipped special token adds no text and stays in the window).
     */
    private String emit(String after) {
        String before = decodeRange(prefixStart, readStart);
        if (after.length() <= before.length()) {
            return "";
        }
        prefixStart = readStart;
        readStart = length;
        return after.substring(before.length());
    }

    private String decodeRange(int from, int to) {
        if (from == to) {
            return "";
        }
        return tokenizer.decode(Arrays.copyOfRange(ids, from, to), skipSpecialTokens);
    }
}
