package dev.coil.engine.runner;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A regular expression ({@link RegexSyntax}) as an automaton over UTF-16 units, held together with a
 * count of code points from {@code minLength} to {@code maxLength} (JSON Schema's bounds beside a
 * {@code pattern}): the texts it takes are those the pattern matches whole within the bounds.
 *
 * <p>Built the textbook way (Thompson's construction: each part of the tree a few states joined by
 * empty moves), then without the empty moves: what remains are the states that read a unit, plus the
 * accepting one. A {@link Position} is the set of (state, count) pairs a text may stand in. Only
 * pairs from which the accepting state can still be reached within the bounds are ever kept, so a
 * text the automaton took can always be finished: a model held to it never meets a dead end.
 *
 * <p>Positions are kept once each and the moves between them remembered (the automaton made
 * deterministic as texts reach it, up to {@link #MAX_KEPT} positions): the constraint feeds the same
 * positions the same characters at every step, as it walks the vocabulary from nearby states. A move
 * is remembered per class of units: units that every reading state takes or refuses alike (all the
 * letters of {@code [a-z]+}) move alike.
 */
final class RegexAutomaton {

    /** Most states of the automaton; a pattern that needs more is refused. */
    static final int MAX_STATES = 20_000;
    /** Most (state, count) pairs to check for liveness; a pattern with bounds that needs more is refused. */
    static final long MAX_PAIRS = 4_000_000;
    /** Most positions kept; past them, moves from new positions are computed each time. */
    static final int MAX_KEPT = 1 << 15;
    /** What a remembered move to nowhere leads to. */
    private static final Position DEAD = new Position(new int[0], -1, false, false);

    /** Units each reading state takes: ranges, flattened as in {@link CodePointSet}. */
    private final int[][] reads;
    /** Whether reading the state's unit counts a code point (a high surrogate does not: its low half does). */
    private final boolean[] counts;
    /** The reading states (and the accepting one) each reading state leads to, through empty moves. */
    private final int[][] next;
    private final int accepting;
    private final int minLength;
    private final int maxLength;
    /** Counts kept per state: maxLength + 1 with a most, else minLength + 1 (more than the least are alike). */
    private final int countSlots;
    private final BitSet live;
    private final Position start;
    /** Per UTF-16 unit, its class: the units between two consecutive range ends of the reading states. */
    private final char[] unitClass;
    private final int classes;
    private final ConcurrentHashMap<Position, Position> kept = new ConcurrentHashMap<>();
    private final AtomicInteger positionIds = new AtomicInteger();

    private RegexAutomaton(Thompson built, int minLength, int maxLength, String pattern) {
        this.minLength = minLength;
        this.maxLength = maxLength;
        this.countSlots = (maxLength == Integer.MAX_VALUE ? minLength : maxLength) + 1;
        int[] index = new int[built.size()];
        Arrays.fill(index, -1);
        List<Integer> kept = new ArrayList<>();
        for (int state = 0; state < built.size(); state++) {
            if (built.reads.get(state) != null || state == built.accept) {
                index[state] = kept.size();
                kept.add(state);
            }
        }
        if ((long) kept.size() * countSlots > MAX_PAIRS) {
            throw new IllegalArgumentException("the pattern " + quoted(pattern) + " with its length bounds makes "
                    + "an automaton too large to hold to");
        }
        int size = kept.size();
        reads = new int[size][];
        counts = new boolean[size];
        next = new int[size][];
        for (int i = 0; i < size; i++) {
            int state = kept.get(i);
            reads[i] = built.reads.get(state);
            counts[i] = reads[i] != null && !(reads[i].length == 2 && Character.isHighSurrogate((char) reads[i][0])
                    && Character.isHighSurrogate((char) reads[i][1]));
            next[i] = reads[i] == null ? new int[0] : closure(built, built.target.get(state), index);
        }
        accepting = index[built.accept];
        unitClass = new char[Character.MAX_VALUE + 1];
        classes = classify(reads, unitClass);
        live = liveness();
        int[] first = closure(built, built.start, index);
        start = position(first, 0);
        if (start == null) {
            throw new IllegalArgumentException("the pattern " + quoted(pattern) + " matches no text"
                    + (minLength > 0 || maxLength < Integer.MAX_VALUE ? " of " + minLength + " to "
                    + (maxLength == Integer.MAX_VALUE ? "any number of" : maxLength) + " characters" : ""));
        }
    }

    /** The automaton of {@code pattern}, whole texts of {@code minLength} to {@code maxLength} code points. */
    static RegexAutomaton compile(String pattern, int minLength, int maxLength) {
        Thompson built = new Thompson(pattern);
        int end = built.build(RegexSyntax.parse(pattern), built.start);
        built.empty(end, built.accept);
        return new RegexAutomaton(built, minLength, maxLength, pattern);
    }

    /** Before the text's first unit. */
    Position start() {
        return start;
    }

    /** Where {@code unit} leads from {@code from}, or null when the pattern cannot take it there. */
    Position feed(Position from, char unit) {
        if (from.id < 0) {
            return step(from, unit);
        }
        Position[] row = from.moves;
        if (row == null) {
            row = new Position[classes];
            from.moves = row; // a race makes two rows, each right
        }
        Position known = row[unitClass[unit]];
        if (known == null) {
            Position next = step(from, unit);
            known = next == null ? DEAD : next;
            row[unitClass[unit]] = known;
        }
        return known == DEAD ? null : known;
    }

    private Position step(Position from, char unit) {
        int[] pairs = new int[Math.max(4, from.pairs.length * 2)];
        int size = 0;
        for (int pair : from.pairs) {
            int state = pair / countSlots;
            if (state == accepting || !CodePointSet.inRanges(reads[state], unit)) {
                continue;
            }
            int count = advance(pair % countSlots, counts[state]);
            if (count < 0) {
                continue;
            }
            for (int target : next[state]) {
                int key = target * countSlots + count;
                if (live.get(key)) {
                    if (size == pairs.length) {
                        pairs = Arrays.copyOf(pairs, size * 2);
                    }
                    pairs[size++] = key;
                }
            }
        }
        if (size == 0) {
            return null;
        }
        Arrays.sort(pairs, 0, size);
        int distinct = 0;
        for (int i = 0; i < size; i++) {
            if (distinct == 0 || pairs[i] != pairs[distinct - 1]) {
                pairs[distinct++] = pairs[i];
            }
        }
        return kept(Arrays.copyOf(pairs, distinct));
    }

    /** The one position of these pairs (a new one once MAX_KEPT are kept, whose moves are not remembered). */
    private Position kept(int[] pairs) {
        boolean accepts = false;
        boolean continues = false;
        for (int pair : pairs) {
            accepts |= pair / countSlots == accepting;
            continues |= pair / countSlots != accepting;
        }
        if (kept.size() >= MAX_KEPT) {
            return new Position(pairs, -1, accepts, continues);
        }
        Position candidate = new Position(pairs, positionIds.getAndIncrement(), accepts, continues);
        Position existing = kept.putIfAbsent(candidate, candidate);
        return existing != null ? existing : candidate;
    }

    /** Whether the text may end at {@code position}: the pattern matches it whole, within the bounds. */
    boolean accepts(Position position) {
        return position.accepts;
    }

    /** Whether some unit may follow at {@code position}. */
    boolean mayContinue(Position position) {
        return position.continues;
    }

    /**
     * Fills {@code unitClass} with each unit's class and returns the count of classes: the units from
     * one range end (a low end, or one past a high end) to the next fall in one class.
     */
    private static int classify(int[][] reads, char[] unitClass) {
        TreeSet<Integer> ends = new TreeSet<>(List.of(0));
        for (int[] ranges : reads) {
            for (int i = 0; ranges != null && i < ranges.length; i += 2) {
                ends.add(ranges[i]);
                if (ranges[i + 1] < Character.MAX_VALUE) {
                    ends.add(ranges[i + 1] + 1);
                }
            }
        }
        int[] starts = ends.stream().mapToInt(Integer::intValue).toArray();
        for (int c = 0; c < starts.length; c++) {
            int end = c + 1 < starts.length ? starts[c + 1] : Character.MAX_VALUE + 1;
            Arrays.fill(unitClass, starts[c], end, (char) c);
        }
        return starts.length;
    }

    /** The count after a unit: one more when it counts, the same beyond the least without a most; -1 past the most. */
    private int advance(int count, boolean counted) {
        if (!counted) {
            return count;
        }
        if (maxLength == Integer.MAX_VALUE) {
            return Math.min(count + 1, countSlots - 1);
        }
        return count + 1 <= maxLength ? count + 1 : -1;
    }

    private Position position(int[] states, int count) {
        int[] pairs = Arrays.stream(states).map(state -> state * countSlots + count).filter(live::get)
                .sorted().distinct().toArray();
        return pairs.length == 0 ? null : kept(pairs);
    }

    /** The pairs from which the accepting state is reachable with a count within the bounds: backwards from it. */
    private BitSet liveness() {
        int size = reads.length;
        List<List<Integer>> before = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            before.add(new ArrayList<>());
        }
        for (int state = 0; state < size; state++) {
            for (int target : next[state]) {
                before.get(target).add(state);
            }
        }
        BitSet reached = new BitSet(size * countSlots);
        ArrayDeque<Integer> queue = new ArrayDeque<>();
        for (int count = minLength; count < countSlots; count++) {
            int key = accepting * countSlots + count;
            reached.set(key);
            queue.add(key);
        }
        while (!queue.isEmpty()) {
            int key = queue.poll();
            int target = key / countSlots;
            int count = key % countSlots;
            for (int state : before.get(target)) {
                for (int from = Math.max(0, count - 1); from <= count; from++) {
                    if (advance(from, counts[state]) == count) {
                        int previous = state * countSlots + from;
                        if (!reached.get(previous)) {
                            reached.set(previous);
                            queue.add(previous);
                        }
                    }
                }
            }
        }
        return reached;
    }

    /** The reading states and the accepting one that {@code state} reaches through empty moves, as new indices. */
    private static int[] closure(Thompson built, int state, int[] index) {
        BitSet seen = new BitSet(built.size());
        ArrayDeque<Integer> stack = new ArrayDeque<>();
        stack.push(state);
        seen.set(state);
        List<Integer> out = new ArrayList<>();
        while (!stack.isEmpty()) {
            int at = stack.pop();
            if (index[at] >= 0) {
                out.add(index[at]);
            }
            for (int target : built.empties.get(at)) {
                if (!seen.get(target)) {
                    seen.set(target);
                    stack.push(target);
                }
            }
        }
        return out.stream().mapToInt(Integer::intValue).sorted().toArray();
    }

    private static String quoted(String text) {
        return "\"" + text + "\"";
    }

    /** Where a text stands: its (state, count) pairs, sorted. Positions are equal when their pairs are. */
    static final class Position {
        private final int[] pairs;
        /** Its number among the automaton's kept positions, or -1 (then its moves are not remembered). */
        private final int id;
        private final boolean accepts;
        private final boolean continues;
        /** Where each class of units leads, once fed (DEAD: nowhere); null until the first. */
        private volatile Position[] moves;

        private Position(int[] pairs, int id, boolean accepts, boolean continues) {
            this.pairs = pairs;
            this.id = id;
            this.accepts = accepts;
            this.continues = continues;
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Position position && Arrays.equals(position.pairs, pairs);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(pairs);
        }
    }

    /**
     * Thompson's construction: every state has empty moves, and at most one move that reads a unit
     * (its ranges and target).
     */
    private static final class Thompson {
        final List<int[]> reads = new ArrayList<>();
        final List<Integer> target = new ArrayList<>();
        final List<List<Integer>> empties = new ArrayList<>();
        final String pattern;
        final int start;
        final int accept;

        Thompson(String pattern) {
            this.pattern = pattern;
            start = newState();
            accept = newState();
        }

        int size() {
            return reads.size();
        }

        int newState() {
            if (reads.size() >= MAX_STATES) {
                throw new IllegalArgumentException("the pattern " + quoted(pattern) + " makes an automaton of more "
                        + "than " + MAX_STATES + " states");
            }
            reads.add(null);
            target.add(-1);
            empties.add(new ArrayList<>());
            return reads.size() - 1;
        }

        void empty(int from, int to) {
            empties.get(from).add(to);
        }

        /** Adds a move from {@code from} that reads a unit of {@code ranges}; returns the state after it. */
        int read(int from, int[] ranges) {
            int to = newState();
            int reader = newState();
            empty(from, reader);
            reads.set(reader, ranges);
            target.set(reader, to);
            return to;
        }

        /** Builds {@code node} from state {@code from}; returns the state after it. */
        int build(RegexSyntax.Node node, int from) {
            return switch (node) {
                case RegexSyntax.Chars chars -> characters(chars.set(), from);
                case RegexSyntax.Sequence sequence -> {
                    int at = from;
                    for (RegexSyntax.Node part : sequence.parts()) {
                        at = build(part, at);
                    }
                    yield at;
                }
                case RegexSyntax.Choice choice -> {
                    int end = newState();
                    for (RegexSyntax.Node alternative : choice.alternatives()) {
                        empty(build(alternative, from), end);
                    }
                    yield end;
                }
                case RegexSyntax.Repeat repeat -> repeat(repeat, from);
            };
        }

        private int characters(CodePointSet set, int from) {
            int end = newState();
            int[] basic = set.basicRanges();
            if (basic.length > 0) {
                empty(read(from, basic), end);
            }
            for (int[] pair : set.supplementaryPairs()) {
                int afterHigh = read(from, new int[] {pair[0], pair[1]});
                empty(read(afterHigh, new int[] {pair[2], pair[3]}), end);
            }
            return end;
        }

        private int repeat(RegexSyntax.Repeat repeat, int from) {
            int at = from;
            for (int i = 0; i < repeat.min(); i++) {
                at = build(repeat.node(), at);
            }
            if (repeat.max() < 0) {
                // A loop: each round starts from a fresh state, so that nothing before it joins the loop.
                int loop = newState();
                empty(at, loop);
                empty(build(repeat.node(), loop), loop);
                return loop;
            }
            int end = newState();
            empty(at, end);
            for (int i = repeat.min(); i < repeat.max(); i++) {
                at = build(repeat.node(), at);
                empty(at, end);
            }
            return end;
        }
    }
}
