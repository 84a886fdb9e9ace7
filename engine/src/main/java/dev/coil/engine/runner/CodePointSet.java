package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A set of Unicode code points (U+0000 to U+10FFFF, never a surrogate U+D800 to U+DFFF, which text holds
 * only as halves of a pair), as sorted ranges that neither overlap nor touch. A regular expression's
 * class, escape or literal is one.
 */
final class CodePointSet {

    static final int MAX = Character.MAX_CODE_POINT;

    static final CodePointSet EMPTY = new CodePointSet(new int[0]);
    static final CodePointSet DIGIT = new CodePointSet(new int[] {'0', '9'});
    static final CodePointSet WORD = new CodePointSet(new int[] {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'});
    /** ECMA-262's WhiteSpace and LineTerminator. */
    static final CodePointSet SPACE = new CodePointSet(new int[] {'\t', '\r', ' ', ' ', 0xA0, 0xA0, 0x1680, 0x1680,
            0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF});
    /** What {@code .} matches: anything but a line terminator. */
    static final CodePointSet DOT = new CodePointSet(new int[] {'\n', '\n', '\r', '\r', 0x2028, 0x2029}).complement();

    /** Flattened ranges: {@code ranges[2i]} to {@code ranges[2i + 1]}, inclusive. */
    private final int[] ranges;

    private CodePointSet(int[] ranges) {
        this.ranges = withoutSurrogates(ranges);
    }

    static CodePointSet of(int codePoint) {
        return range(codePoint, codePoint);
    }

    static CodePointSet range(int low, int high) {
        return new CodePointSet(new int[] {low, high});
    }

    /** The one code point the set holds, or null. */
    Integer single() {
        return ranges.length == 2 && ranges[0] == ranges[1] ? ranges[0] : null;
    }

    /** Whether {@code value} lies in one of {@code ranges} (flattened, sorted low to high). */
    static boolean inRanges(int[] ranges, int value) {
        for (int i = 0; i < ranges.length; i += 2) {
            if (value < ranges[i]) {
                return false;
            }
            if (value <= ranges[i + 1]) {
                return true;
            }
        }
        return false;
    }

    CodePointSet union(CodePointSet other) {
        int[] all = Arrays.copyOf(ranges, ranges.length + other.ranges.length);
        System.arraycopy(other.ranges, 0, all, ranges.length, other.ranges.length);
        return new CodePointSet(normalized(all));
    }

    /** Every code point (but the surrogates) the set does not hold. */
    CodePointSet complement() {
        List<Integer> out = new ArrayList<>();
        int next = 0;
        for (int i = 0; i < ranges.length; i += 2) {
            if (ranges[i] > next) {
                out.add(next);
                out.add(ranges[i] - 1);
            }
            next = ranges[i + 1] + 1;
        }
        if (next <= MAX) {
            out.add(next);
            out.add(MAX);
        }
        return new CodePointSet(out.stream().mapToInt(Integer::intValue).toArray());
    }

    /** The part below U+10000, as ranges of single UTF-16 units. */
    int[] basicRanges() {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < ranges.length && ranges[i] <= 0xFFFF; i += 2) {
            out.add(ranges[i]);
            out.add(Math.min(ranges[i + 1], 0xFFFF));
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * The part from U+10000 on, as pairs of unit ranges: each entry {high low, high high, low low, low
     * high} stands for every high half in its first range followed by every low half in its second.
     */
    List<int[]> supplementaryPairs() {
        List<int[]> pairs = new ArrayList<>();
        for (int i = 0; i < ranges.length; i += 2) {
            int low = Math.max(ranges[i], 0x10000);
            int high = ranges[i + 1];
            while (low <= high) {
                char lowHigh = Character.highSurrogate(low);
                char lowLow = Character.lowSurrogate(low);
                if (lowLow != 0xDC00 || Character.highSurrogate(high) == lowHigh) {
                    // A part of one high half's 1024 code points.
                    int end = Math.min(high, Character.toCodePoint(lowHigh, (char) 0xDFFF));
                    pairs.add(new int[] {lowHigh, lowHigh, lowLow, Character.lowSurrogate(end)});
                    low = end + 1;
                } else {
                    // Whole high halves, up to the last whole one.
                    char lastHigh = Character.lowSurrogate(high) == 0xDFFF ? Character.highSurrogate(high)
                            : (char) (Character.highSurrogate(high) - 1);
                    pairs.add(new int[] {lowHigh, lastHigh, 0xDC00, 0xDFFF});
                    low = Character.toCodePoint(lastHigh, (char) 0xDFFF) + 1;
                }
            }
        }
        return pairs;
    }

    /** Sorts and merges ranges that overlap or touch. */
    private static int[] normalized(int[] flat) {
        int count = flat.length / 2;
        long[] packed = new long[count];
        for (int i = 0; i < count; i++) {
            packed[i] = ((long) flat[2 * i] << 32) | flat[2 * i + 1];
        }
        Arrays.sort(packed);
        List<Integer> out = new ArrayList<>();
        for (long range : packed) {
            int low = (int) (range >>> 32);
            int high = (int) range;
            if (!out.isEmpty() && low <= out.getLast() + 1) {
                out.set(out.size() - 1, Math.max(out.getLast(), high));
            } else {
                out.add(low);
                out.add(high);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The ranges with U+D800 to U+DFFF cut out. */
    private static int[] withoutSurrogates(int[] flat) {
        int[] sorted = normalized(flat);
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < sorted.length; i += 2) {
            int low = sorted[i];
            int high = sorted[i + 1];
            if (low < Character.MIN_SURROGATE) {
                out.add(low);
                out.add(Math.min(high, Character.MIN_SURROGATE - 1));
            }
            if (high > Character.MAX_SURROGATE) {
                out.add(Math.max(low, Character.MAX_SURROGATE + 1));
                out.add(high);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof CodePointSet set && Arrays.equals(set.ranges, ranges);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(ranges);
    }
}
