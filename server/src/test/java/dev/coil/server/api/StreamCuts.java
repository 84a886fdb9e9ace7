package dev.coil.server.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Ways a streamed output may arrive: the pieces a reader of it is fed, for stream = whole tests. */
final class StreamCuts {

    private StreamCuts() {
    }

    /**
     * {@code output} cut in two at every place, a code point at a time, and {@code randomCuts} times into
     * random pieces of 1 to 6 characters (surrogate pairs kept whole), seeded by the output.
     */
    static List<List<String>> of(String output, int randomCuts) {
        List<List<String>> cuts = new ArrayList<>();
        for (int at = 0; at <= output.length(); at++) {
            cuts.add(List.of(output.substring(0, at), output.substring(at)));
        }
        cuts.add(output.codePoints().mapToObj(Character::toString).toList());
        Random random = new Random(output.hashCode());
        for (int trial = 0; trial < randomCuts; trial++) {
            cuts.add(random(output, random));
        }
        return cuts;
    }

    /** {@code output} cut into random pieces of 1 to 6 characters; one empty piece for an empty output. */
    static List<String> random(String output, Random random) {
        List<String> pieces = new ArrayList<>();
        for (int start = 0; start < output.length(); ) {
            int end = Math.min(output.length(), start + 1 + random.nextInt(6));
            if (end < output.length() && Character.isLowSurrogate(output.charAt(end))) {
                end++;
            }
            pieces.add(output.substring(start, end));
            start = end;
        }
        return pieces.isEmpty() ? List.of("") : pieces;
    }
}
