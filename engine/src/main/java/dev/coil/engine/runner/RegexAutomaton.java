package dev.coil.engine.runner;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
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
 * deterministic as texts reach it, up to {@link #MAX_KEPT} moves): the constraint feeds the same
 * positions the same characters at every step, as it walks the vocabulary from nearby states.
 */
final class RegexAutomaton {

    /** Most states of the automaton; a pattern that needs more is refused. */
    static final int MAX_STATES = 20_000;
    /** Most (state, count) pairs to check for liveness; a pattern with bounds that needs more is refused. */
    static final long MAX_PAIRS = 4_000_000;
    /** Most moves remembered, and positions kept; past them, moves are computed each time. */
    static final int MAX_KEPT = 1 << 17;
    /** What a remembered move to nowhere leads to. */
    private static final Position DEAD = new Position(new int[0], -1);

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
    private final ConcurrentHashMap<Position, Position> kept = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<Long, Position> moves = new ConcurrentHashMap<>();
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
        long key = ((long) from.id << 16) | unit;
        Position known = moves.get(key);
        if (known == null) {
            Position next = step(from, unit);
            known = next == null ? DEAD : next;
            if (moves.size() < MAX_KEPT) {
                moves.put(key, known);
            }
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
        if (kept.size() >= MAX_KEPT) {
            return new Position(pairs, -1);
        }
        Position candidate = new Position(pairs, positionIds.getAndIncrement());
        Position existing = kept.putIfAbsent(candidate, candidate);
        return existing != null ? existing : candidate;
    }

    /** Whether the text may end at {@code position}: the pattern matches it whole, within the bounds. */
    boolean accepts(Position position) {
        for (int pair : position.pairs) {
            if (pair / countSlots == accepting) {
                return true;
            }
        }
        return false;
    }

    /** Whether some unit may follow at {@code position}. */
    boolean mayContinue(Position position) {
        for (int pair : position.pairs) {
            if (pair / countSlots != accepting) {
                return true;
            }
        }
        return false;
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
        /** Its number among the automaton's kept positions, or -1. */
        private final int id;

        private Position(int[] pairs, int id) {
            this.pairs = pairs;
            this.id = id;
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

        /** Adds a unit's move from {@code from}; returns the state after it. */
        int read(int from, int low, int high) {
            int to = newState();
            int reader = newState();
            empty(from, reader);
            reads.set(reader, new int[] {low, high});
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
                int to = newState();
                int reader = newState();
                empty(from, reader);
                reads.set(reader, basic);
                target.set(reader, to);
                empty(to, end);
            }
            for (int[] pair : set.supplementaryPairs()) {
                int afterHigh = read(from, pair[0], pair[1]);
                empty(read(afterHigh, pair[2], pair[3]), end);
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
