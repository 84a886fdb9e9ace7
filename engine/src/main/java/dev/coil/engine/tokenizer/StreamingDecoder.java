package dev.coil.engine.tokenizer;

import java.nio.charset.StandardCharsets;
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
 * the same either way. A prompt given as token ids may end inside a character (its text ends in
 * U+FFFD); while the answer's first bytes go on with that character, its first window also holds the
 * prompt's tokens from the one where the character begins, so that the answer's first text is the
 * whole character its bytes finish, as decoding the prompt and the answer together shows it (and as
 * tokenizers' DecodeStream stepped through the prompt gives it), not a U+FFFD for its own bytes alone.
 * Where they do not go on with it, those tokens leave the window and the answer reads as after any
 * prompt. After
 * the last token call {@link #flush()}, which emits whatever is still held back (a sequence that really ends
 * in an incomplete character decodes to U+FFFD, as the full decode does).
 *
 * <p>Not thread-safe; one instance per generated sequence.
 */
public final class StreamingDecoder {

    private static final char REPLACEMENT = '\uFFFD';

    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    /**
     * The letter token, then the prompt's tokens of its unfinished character, then the ids accepted;
     * {@code first} is where those begin.
     */
    private int[] ids = new int[64];
    private int first;
    private int length;
    /** First id of the decode window: the context that makes the next delta decode as in the full text. */
    private int prefixStart;
    /** First id whose text has not been emitted yet. */
    private int readStart;
    private boolean midCharacter;
    /** The continuation bytes the prompt's unfinished character still needs; 0 when it has none left. */
    private int unfinishedBytes;
    /**
     * While the window holds the prompt's tokens of its unfinished character: the text emitted for
     * ids[prefixStart, readStart), their decode without the U+FFFD of the unfinished bytes (what the
     * prompt's text has shown for its whole characters). Null otherwise; that text is then the decode.
     */
    private String promptText;
    /** Where the prompt's tokens of its unfinished character begin in {@code ids}. */
    private int promptCharacterStart;

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
        StreamingDecoder decoder = new StreamingDecoder(tokenizer, skipSpecialTokens, promptHasText);
        UnfinishedCharacter unfinished = promptHasText ? UnfinishedCharacter.find(tokenizer, prompt) : null;
        if (unfinished != null) {
            decoder.holdPromptCharacter(Arrays.copyOfRange(prompt, unfinished.token(), prompt.length), unfinished);
        }
        return decoder;
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
     * A character the prompt's last tokens begin and do not finish.
     *
     * @param token the index of the prompt token holding the character's first byte
     * @param wholeTextBefore that token's bytes before the character, as text (whole characters)
     * @param missingBytes the continuation bytes the character still needs (1 to 3)
     */
    record UnfinishedCharacter(int token, String wholeTextBefore, int missingBytes) {

        /**
         * The prompt's unfinished last character, or null when the prompt ends between characters, in a
         * special token, in bytes no character could finish, or in a token whose bytes the tokenizer does
         * not tell.
         */
        static UnfinishedCharacter find(Tokenizer tokenizer, int[] prompt) {
            int continuationBytes = 0;
            for (int token = prompt.length - 1; token >= 0; token--) {
                byte[] bytes = tokenizer.isSpecial(prompt[token]) ? null : tokenizer.tokenBytes(prompt[token]);
                if (bytes == null) {
                    return null;
                }
                for (int i = bytes.length - 1; i >= 0; i--) {
                    if (continuation(bytes[i])) {
                        if (++continuationBytes == 4) {
                            return null;
                        }
                        continue;
                    }
                    int b = bytes[i] & 0xFF;
                    int characterLength = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
                    int missingBytes = characterLength - 1 - continuationBytes;
                    return missingBytes > 0
                            ? new UnfinishedCharacter(token, new String(bytes, 0, i, StandardCharsets.UTF_8), missingBytes)
                            : null;
                }
            }
            return null;
        }
    }

    private static boolean continuation(byte b) {
        return (b & 0xC0) == 0x80;
    }

    /**
     * Puts the prompt's tokens of its unfinished character ({@code tail}) ahead of the answer in the
     * first window, taking as emitted the text the prompt has shown for them: their decode up to the
     * U+FFFD the unfinished bytes decode to (a U+FFFD the whole bytes before them end in stays).
     */
    private void holdPromptCharacter(int[] tail, UnfinishedCharacter unfinished) {
        String before = decodeRange(prefixStart, readStart);
        promptCharacterStart = length;
        for (int token : tail) {
            ids[length++] = token;
        }
        String withTail = decodeRange(prefixStart, length);
        int end = withTail.length() - trailingReplacements(withTail)
                + trailingReplacements(before + unfinished.wholeTextBefore());
        if (end >= withTail.length()) {
            length -= tail.length; // the decoder shows no unfinished character there: read as after any prompt
            return;
        }
        promptText = withTail.substring(0, end);
        unfinishedBytes = unfinished.missingBytes();
        first = length;
        readStart = length;
    }

    private static int trailingReplacements(String text) {
        int count = 0;
        while (count < text.length() && text.charAt(text.length() - 1 - count) == REPLACEMENT) {
            count++;
        }
        return count;
    }

    /**
     * Adds one generated id and returns the text it completes: possibly empty (the token ends inside a
     * multi-byte character, or is a skipped special token), possibly more than the token's own text (it
     * completes a character started by earlier tokens).
     */
    public String accept(int id) {
        if (unfinishedBytes > 0) {
            goOnWithThePromptsCharacter(id);
        }
        if (length == ids.length) {
            ids = Arrays.copyOf(ids, 2 * length);
        }
        ids[length++] = id;
        String after = decodeRange(prefixStart, length);
        midCharacter = !after.isEmpty() && after.charAt(after.length() - 1) == REPLACEMENT;
        return midCharacter ? "" : emit(after);
    }

    /**
     * Counts the continuation bytes {@code id} begins with against the prompt's unfinished character;
     * a token that does not go on with it (another character's bytes, a special token, bytes not told)
     * takes the prompt's tokens out of the window.
     */
    private void goOnWithThePromptsCharacter(int id) {
        byte[] bytes = tokenizer.isSpecial(id) ? null : tokenizer.tokenBytes(id);
        int going = 0;
        while (bytes != null && going < bytes.length && going < unfinishedBytes && continuation(bytes[going])) {
            going++;
        }
        if (going == 0 || (going < unfinishedBytes && going < bytes.length)) {
            dropPromptCharacter();
        } else {
            unfinishedBytes -= going;
        }
    }

    /** Takes the prompt's tokens of its unfinished character out of the window, none of it emitted yet. */
    private void dropPromptCharacter() {
        System.arraycopy(ids, first, ids, promptCharacterStart, length - first);
        length -= first - promptCharacterStart;
        first = promptCharacterStart;
        readStart = first;
        unfinishedBytes = 0;
        promptText = null;
    }

    /** Whether the last id accepted left a character half spelled: its bytes are held back. */
    public boolean midCharacter() {
        return midCharacter;
    }

    /** Emits the text still held back, at the end of the sequence. */
    public String flush() {
        if (unfinishedBytes > 0) {
            dropPromptCharacter(); // the answer ends inside the prompt's character: its own bytes are its text
        }
        return emit(decodeRange(prefixStart, length));
    }

    /** The ids accepted so far. */
    public int[] ids() {
        return Arrays.copyOfRange(ids, first, length);
    }

    /**
     * The part of {@code after} beyond the already emitted {@code before}; the window slides only when there
     * is one (a skipped special token adds no text and stays in the window). A window that holds the
     * prompt's character does not slide to where the answer began, inside that character: the next one
     * starts where it did.
     */
    private String emit(String after) {
        String before = promptText != null ? promptText : decodeRange(prefixStart, readStart);
        if (after.length() <= before.length()) {
            return "";
        }
        if (promptText == null) {
            prefixStart = readStart;
        }
        promptText = null;
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
