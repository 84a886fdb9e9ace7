package dev.coil.engine.runner;

import java.util.List;

/**
 * Watches a sequence's generated text for stop strings, one text delta at a time, and says how much of the
 * text can be sent to the client now.
 *
 * <p>A stop string can arrive split across deltas ("&lt;/an" then "swer&gt;"), so text that ends with a
 * prefix of some stop string is held back until the next delta shows whether the stop string follows. When
 * a stop string appears, the text before it is released and generation should end; the stop string itself
 * (unless asked for, as vLLM's include_stop_str_in_output) and anything after it are never emitted
 * (OpenAI's behaviour). When several stop strings match, the one
 * that starts first wins. Stop token ids are the caller's business ({@link SamplingParams#stopTokenIds()}).
 *
 * <p>Not thread-safe; one instance per sequence.
 */
public final class StopMatcher {

    /**
     * What {@link #accept} decided.
     *
     * @param text the text that can be emitted now (possibly empty)
     * @param stopped whether a stop string was found; {@code text} then ends right before it
     * @param stopString the stop string found, or null
     */
    public record Result(String text, boolean stopped, String stopString) {
    }

    private final List<String> stopStrings;
    private final boolean includeStop;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    public StopMatcher(List<String> stopStrings) {
        this(stopStrings, false);
    }

    /** @param includeStop the stop string found ends the released text (vLLM's include_stop_str_in_output) */
    public StopMatcher(List<String> stopStrings, boolean includeStop) {
        this.includeStop = includeStop;
        for (String stop : stopStrings) {
            if (stop == null || stop.isEmpty()) {
                throw new IllegalArgumentException("stop must not contain an empty string");
            }
        }
        this.stopStrings = List.copyOf(stopStrings);
    }

    /**
     * Adds newly generated text.
     *
     * @throws IllegalStateException after a stop string was found
     */
    public Result accept(String delta) {
        return accept(delta, true);
    }

    /**
     * Adds newly generated text; with {@code matching} false (vLLM's min_tokens not yet reached) no
     * stop string is looked for, though text that may begin one is still held back, so that one
     * ending in a later delta is found whole.
     *
     * @throws IllegalStateException after a stop string was found
     */
    public Result accept(String delta, boolean matching) {
        if (stopped) {
            throw new IllegalStateException("a stop string was already found; generation should have ended");
        }
        held.append(delta);
        if (stopStrings.isEmpty()) {
            String text = held.toString();
            held.setLength(0);
            return new Result(text, false, null);
        }

        int firstStart = Integer.MAX_VALUE;
        String firstStop = null;
        for (String stop : matching ? stopStrings : List.<String>of()) {
            int at = held.indexOf(stop);
            if (at >= 0 && at < firstStart) {
                firstStart = at;
                firstStop = stop;
            }
        }
        if (firstStop != null) {
            stopped = true;
            String text = held.substring(0, firstStart + (includeStop ? firstStop.length() : 0));
            held.setLength(0);
            return new Result(text, true, firstStop);
        }

        int keep = longestSuffixThatStartsAStop();
        String text = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return new Result(text, false, null);
    }

    /** The text still held back, to be emitted when generation ends for another reason (EOS, max tokens). */
    public String flush() {
        if (stopped) {
            return "";
        }
        String text = held.toString();
        held.setLength(0);
        return text;
    }

    /** Whether a stop string was found. */
    public boolean stopped() {
        return stopped;
    }

    /** Length of the longest suffix of the held text that is a proper prefix of some stop string. */
    private int longestSuffixThatStartsAStop() {
        int longest = 0;
        int length = held.length();
        for (String stop : stopStrings) {
            for (int n = Math.min(stop.length() - 1, length); n > longest; n--) {
                if (heldEndsWith(stop, n)) {
                    longest = n;
                    break;
                }
            }
        }
        return longest;
    }

    /** Whether the held text ends with the first {@code n} characters of {@code stop}. */
    private boolean heldEndsWith(String stop, int n) {
        int offset = held.length() - n;
        for (int i = 0; i < n; i++) {
            if (held.charAt(offset + i) != stop.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
