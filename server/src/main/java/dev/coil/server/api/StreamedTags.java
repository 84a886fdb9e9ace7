package dev.coil.server.api;

/** What the readers of a streamed output share about tags that may be cut between pieces. */
final class StreamedTags {

    private StreamedTags() {
    }

    /**
     * How many of {@code text}'s last characters are a proper beginning of {@code tag}: what a reader
     * holds back until the next piece says whether the tag follows.
     */
    static int partialTagLength(CharSequence text, String tag) {
        for (int length = Math.min(tag.length() - 1, text.length()); length > 0; length--) {
            if (text.subSequence(text.length() - length, text.length()).toString().equals(tag.substring(0, length))) {
                return length;
            }
        }
        return 0;
    }
}
