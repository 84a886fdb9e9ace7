package dev.coil.engine.runner;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a text stands against a few strings it is searched for (a structural tag's triggers, the strings
 * its free text excludes): a state is the longest end of the text read so far that begins one of the
 * strings, so that {@link #next} needs only the state and the next character (the automaton of Aho and
 * Corasick, 1975). States are small integers, 0 the empty end, so that grammar frames holding one
 * compare and hash cheaply. Immutable once made.
 */
final class StringSearch {

    private final List<String> strings;
    private final boolean onlyAscii;
    /** children.get(state): the state one character further along a string. */
    private final List<Map<Character, Integer>> children = new ArrayList<>();
    /** fallback[state]: the longest proper end of the state's text that is a state too. */
    private final int[] fallback;
    /** found[state]: the indices of the strings the state's text ends with (a string ends there). */
    private final int[][] found;

    /**
     * Whether every searched string is ASCII: then a character from U+0080 on ends no string and leads
     * back to the start, whatever the state.
     */
    boolean onlyAscii() {
        return onlyAscii;
    }

    /** A search for {@code strings} (none empty; a string given twice counts once, by its first index). */
    StringSearch(List<String> strings) {
        this.strings = List.copyOf(strings);
        this.onlyAscii = this.strings.stream().allMatch(string -> string.chars().allMatch(c -> c < 0x80));
        children.add(new HashMap<>());
        List<List<Integer>> ending = new ArrayList<>();
        ending.add(new ArrayList<>());
        for (int index = 0; index < this.strings.size(); index++) {
            String string = this.strings.get(index);
            if (string.isEmpty()) {
                throw new IllegalArgumentException("a searched string must not be empty");
            }
            int state = 0;
            for (int i = 0; i < string.length(); i++) {
                Integer child = children.get(state).get(string.charAt(i));
                if (child == null) {
                    child = children.size();
                    children.get(state).put(string.charAt(i), child);
                    children.add(new HashMap<>());
                    ending.add(new ArrayList<>());
                }
                state = child;
            }
            if (ending.get(state).isEmpty()) {
                ending.get(state).add(index);
            }
        }
        fallback = new int[children.size()];
        // Breadth first: a state's fallback is shorter, so it is complete when the state is reached.
        ArrayDeque<Integer> queue = new ArrayDeque<>(children.getFirst().values());
        while (!queue.isEmpty()) {
            int state = queue.poll();
            for (Map.Entry<Character, Integer> edge : children.get(state).entrySet()) {
                int child = edge.getValue();
                fallback[child] = state == 0 ? 0 : next(fallback[state], edge.getKey());
                ending.get(child).addAll(ending.get(fallback[child]));
                queue.add(child);
            }
        }
        found = new int[children.size()][];
        for (int state = 0; state < found.length; state++) {
            found[state] = ending.get(state).stream().mapToInt(Integer::intValue).toArray();
        }
    }

    /** The state after {@code c} from {@code state}. */
    int next(int state, char c) {
        while (true) {
            Integer child = children.get(state).get(c);
            if (child != null) {
                return child;
            }
            if (state == 0) {
                return 0;
            }
            state = fallback[state];
        }
    }

    /** The indices of the strings that the text ends with at {@code state} (empty: none ends here). */
    int[] found(int state) {
        return found[state];
    }

    /** The string of index {@code index}. */
    String string(int index) {
        return strings.get(index);
    }
}
