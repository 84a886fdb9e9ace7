package dev.coil.engine.runner;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
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
 *
 * <p>{@link #without} takes a few whole texts out (the names of an object's listed properties, which an
 * additional key may not spell): a position also holds where its text stands among those texts (a node
 * of their {@link Trie}, or -1 once it begins none of them), and a text is refused where every way to
 * finish it would spell one of them, so that the promise above holds for what remains.
 */
final class RegexAutomaton {

    /** Most states of the automaton; a pattern that needs more is refused. */
    static final int MAX_STATES = 20_000;
    /** Most (state, count) pairs to check for liveness; a pattern with bounds that needs more is refused. */
    static final long MAX_PAIRS = 4_000_000;
    /** Most positions kept; past them, moves from new positions are computed each time. */
    static final int MAX_KEPT = 1 << 15;
    /** What a remembered move to nowhere leads to. */
    private static final Position DEAD = new Position(new int[0], -1, -1, false, false);

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
    /** The texts taken out ({@link #without}); empty for a compiled pattern. */
    private final Trie excluded;
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
        excluded = Trie.EMPTY;
        unitClass = new char[Character.MAX_VALUE + 1];
        classes = classify(reads, excluded, unitClass);
        live = liveness();
        int[] first = closure(built, built.start, index);
        start = position(first, 0);
        if (start == null) {
            throw new IllegalArgumentException("the pattern " + quoted(pattern) + " matches no text"
                    + (minLength > 0 || maxLength < Integer.MAX_VALUE ? " of " + minLength + " to "
                    + (maxLength == Integer.MAX_VALUE ? "any number of" : maxLength) + " characters" : ""));
        }
    }

    /** {@code base}'s states and bounds, with {@code excluded}'s texts refused; start null when none is left. */
    private RegexAutomaton(RegexAutomaton base, Trie excluded) {
        minLength = base.minLength;
        maxLength = base.maxLength;
        countSlots = base.countSlots;
        reads = base.reads;
        counts = base.counts;
        next = base.next;
        accepting = base.accepting;
        live = base.live;
        this.excluded = excluded;
        // Each unit of an excluded text is a class of its own: the units of one class lead to one node.
        unitClass = new char[Character.MAX_VALUE + 1];
        classes = classify(reads, excluded, unitClass);
        start = withRoom(kept(base.start.pairs, 0));
    }

    /**
     * The same texts but {@code texts}, or null when no other is left. Unlike the pattern's own
     * texts, these are refused only at their end: a text that begins one of them is taken while some
     * other text can still grow from it.
     */
    RegexAutomaton without(Set<String> texts) {
        if (!excluded.isEmpty()) {
            throw new IllegalStateException("texts are taken out once");
        }
        RegexAutomaton left = new RegexAutomaton(this, Trie.of(texts));
        return left.start == null ? null : left;
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

    /**
     * Whether some unit from {@code least} on may come next at {@code at}: the reading states' ranges
     * reach it (an excluded text may still refuse it; a generous answer only costs a search).
     */
    boolean mayTakeFrom(Position at, char least) {
        for (int pair : at.pairs) {
            int state = pair / countSlots;
            int[] ranges = state == accepting ? null : reads[state];
            if (ranges != null && ranges.length > 0 && ranges[ranges.length - 1] >= least) {
                return true;
            }
        }
        return false;
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
        int node = from.node < 0 ? -1 : excluded.child(from.node, unit);
        return withRoom(kept(Arrays.copyOf(pairs, distinct), node));
    }

    /** The one position of these pairs (a new one once MAX_KEPT are kept, whose moves are not remembered). */
    private Position kept(int[] pairs, int node) {
        boolean accepts = false;
        boolean continues = false;
        for (int pair : pairs) {
            accepts |= pair / countSlots == accepting;
            continues |= pair / countSlots != accepting;
        }
        accepts &= node < 0 || !excluded.ends(node);
        if (kept.size() >= MAX_KEPT) {
            return new Position(pairs, node, -1, accepts, continues);
        }
        Position candidate = new Position(pairs, node, positionIds.getAndIncrement(), accepts, continues);
        Position existing = kept.putIfAbsent(candidate, candidate);
        return existing != null ? existing : candidate;
    }

    /**
     * {@code position}, or null when every text that may grow from it is an excluded one. It has room
     * when it may end, or when one of its states reads a unit that begins no excluded text from here
     * (every pair is live, and any unit of a state's ranges leads to the same live pairs), or when a
     * unit that goes on along the excluded texts leads to a position with room (a search no deeper
     * than the longest of them: each such move is remembered).
     */
    private Position withRoom(Position position) {
        if (position.node < 0 || position.accepts) {
            return position;
        }
        for (int pair : position.pairs) {
            int state = pair / countSlots;
            int[] ranges = reads[state];
            for (int i = 0; state != accepting && i < ranges.length; i += 2) {
                if (excluded.childrenWithin(position.node, ranges[i], ranges[i + 1]) < ranges[i + 1] - ranges[i] + 1) {
                    return position;
                }
            }
        }
        for (char unit : excluded.childUnits(position.node)) {
            if (feed(position, unit) != null) {
                return position;
            }
        }
        return null;
    }

    /**
     * How many whole texts the automaton takes, or {@code cap} when at least that many: the texts of
     * each length in turn, as the number of ways to each position a unit further (each class of units
     * counted by its size), without recursion however long the texts. Every position kept can still
     * end, so when the lengths outnumber the positions met, some position repeats on a path: a loop,
     * texts without end. cap: at most 2^31.
     */
    long textsUpTo(long cap) {
        if (cap > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("texts are counted up to 2^31, not " + cap);
        }
        char[] first = new char[classes];
        long[] size = new long[classes];
        for (int unit = Character.MAX_VALUE; unit >= 0; unit--) {
            first[unitClass[unit]] = (char) unit;
            size[unitClass[unit]]++;
        }
        Map<Position, Long> ways = Map.of(start, 1L);
        Set<Position> met = new HashSet<>();
        long total = 0;
        for (int length = 0; !ways.isEmpty() && total < cap; length++) {
            if (length > met.size() + 1) {
                return cap;
            }
            Map<Position, Long> longer = new HashMap<>();
            for (Map.Entry<Position, Long> entry : ways.entrySet()) {
                Position position = entry.getKey();
                met.add(position);
                if (position.accepts) {
                    total = Math.min(cap, total + entry.getValue());
                }
                for (int c = 0; c < classes; c++) {
                    Position next = feed(position, first[c]);
                    if (next != null) {
                        // At most 2^16 units a class times at most 2^31 ways: no overflow.
                        longer.merge(next, Math.min(cap, size[c] * entry.getValue()), (a, b) -> Math.min(cap, a + b));
                    }
                }
            }
            ways = longer;
        }
        return total;
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
     * one range end (a low end, or one past a high end) to the next fall in one class, and each unit
     * of an excluded text is a class alone.
     */
    private static int classify(int[][] reads, Trie excluded, char[] unitClass) {
        TreeSet<Integer> ends = new TreeSet<>(List.of(0));
        for (char unit : excluded.units()) {
            ends.add((int) unit);
            if (unit < Character.MAX_VALUE) {
                ends.add(unit + 1);
            }
        }
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
        return pairs.length == 0 ? null : kept(pairs, -1);
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

    /**
     * Where a text stands: its (state, count) pairs, sorted, and its node among the excluded texts (-1:
     * none begins with it). Positions are equal when both are.
     */
    static final class Position {
        private final int[] pairs;
        private final int node;
        /** Its number among the automaton's kept positions, or -1 (then its moves are not remembered). */
        private final int id;
        private final boolean accepts;
        private final boolean continues;
        /** Where each class of units leads, once fed (DEAD: nowhere); null until the first. */
        private volatile Position[] moves;

        private Position(int[] pairs, int node, int id, boolean accepts, boolean continues) {
            this.pairs = pairs;
            this.node = node;
            this.id = id;
            this.accepts = accepts;
            this.continues = continues;
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Position position && position.node == node && Arrays.equals(position.pairs, pairs);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(pairs) + node;
        }
    }

    /** A few texts as a tree of their UTF-16 units: node 0 the empty text, each other one a unit longer. */
    private static final class Trie {
        static final Trie EMPTY = of(Set.of());

        private final List<TreeMap<Character, Integer>> children = new ArrayList<>();
        private final BitSet ends = new BitSet();

        static Trie of(Set<String> texts) {
            Trie trie = new Trie();
            trie.children.add(new TreeMap<>());
            for (String text : texts) {
                int node = 0;
                for (int i = 0; i < text.length(); i++) {
                    Integer child = trie.children.get(node).get(text.charAt(i));
                    if (child == null) {
                        child = trie.children.size();
                        trie.children.add(new TreeMap<>());
                        trie.children.get(node).put(text.charAt(i), child);
                    }
                    node = child;
                }
                trie.ends.set(node);
            }
            return trie;
        }

        boolean isEmpty() {
            return children.size() == 1 && ends.isEmpty();
        }

        /** The node a unit longer, or -1 when no text goes on with {@code unit}. */
        int child(int node, char unit) {
            Integer child = children.get(node).get(unit);
            return child == null ? -1 : child;
        }

        /** Whether a text ends at {@code node}. */
        boolean ends(int node) {
            return ends.get(node);
        }

        Set<Character> childUnits(int node) {
            return children.get(node).keySet();
        }

        /** How many units from {@code low} to {@code high} go on from {@code node}. */
        int childrenWithin(int node, int low, int high) {
            return children.get(node).subMap((char) low, true, (char) high, true).size();
        }

        /** Every unit of every text. */
        Set<Character> units() {
            Set<Character> units = new TreeSet<>();
            children.forEach(map -> units.addAll(map.keySet()));
            return units;
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
