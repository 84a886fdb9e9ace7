package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.function.Predicate;

/**
 * Where a text stands in an {@link OutputGrammar}: the set of {@link GrammarFrame}s it may be in (one,
 * unless the grammar cannot tell yet which alternative the text follows). States never change:
 * {@link #feed} gives the next one, so that the constraint can try every token from the same state.
 */
final class GrammarState {

    /** Most ways the text may stand at once; a character that would lead to more is refused. */
    static final int MAX_FRAMES = 256;

    private final GrammarFrame[] frames;

    private GrammarState(GrammarFrame[] frames) {
        this.frames = frames;
    }

    /** Before the first character of a text that {@code rule} holds. */
    static GrammarState start(ValueRule rule) {
        return new GrammarState(new GrammarFrame[] {new GrammarFrame.Start(rule)});
    }

    /** The state of one frame. */
    static GrammarState of(GrammarFrame frame) {
        return new GrammarState(new GrammarFrame[] {frame});
    }

    /** The only frame the text may stand in, or null when it may stand in several. */
    GrammarFrame onlyFrame() {
        return frames.length == 1 ? frames[0] : null;
    }

    /** The state after {@code c}, or null when the grammar refuses it here. */
    GrammarState feed(char c) {
        return feed(c, new ArrayList<>(frames.length + 1));
    }

    /** As {@link #feed(char)}, with {@code scratch} (emptied first) to gather the next frames in. */
    GrammarState feed(char c, List<GrammarFrame> scratch) {
        List<GrammarFrame> next = scratch;
        next.clear();
        for (GrammarFrame frame : frames) {
            frame.feed(c, next);
        }
        if (next.isEmpty()) {
            return null;
        }
        if (next.size() > 1) {
            next = new ArrayList<>(new LinkedHashSet<>(next));
            if (next.size() > MAX_FRAMES) {
                return null;
            }
        }
        return new GrammarState(next.toArray(GrammarFrame[]::new));
    }

    /** Whether the grammar takes {@code c} here: {@code feed(c) != null} without making the next state. */
    boolean takes(char c, List<GrammarFrame> scratch) {
        scratch.clear();
        for (GrammarFrame frame : frames) {
            frame.feed(c, scratch);
        }
        return !scratch.isEmpty() && (scratch.size() <= MAX_FRAMES || new LinkedHashSet<>(scratch).size() <= MAX_FRAMES);
    }

    /**
     * This state with each frame replaced by {@code replace}'s; this very state, nothing copied, where
     * none changes (the allowed-set lookup asks it of every state it keys).
     */
    GrammarState withFrames(java.util.function.UnaryOperator<GrammarFrame> replace) {
        GrammarFrame[] replaced = null;
        for (int i = 0; i < frames.length; i++) {
            GrammarFrame frame = replace.apply(frames[i]);
            if (frame != frames[i] && replaced == null) {
                replaced = frames.clone();
            }
            if (replaced != null) {
                replaced[i] = frame;
            }
        }
        return replaced == null ? this : new GrammarState(replaced);
    }

    /** The state after every character of {@code text}, or null at the first one refused. */
    GrammarState feedAll(String text) {
        GrammarState state = this;
        for (int i = 0; i < text.length() && state != null; i++) {
            state = state.feed(text.charAt(i));
        }
        return state;
    }

    /** States are equal when they hold the same frames: the same text may follow both. */
    @Override
    public boolean equals(Object other) {
        return other instanceof GrammarState state && Arrays.equals(state.frames, frames);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(frames);
    }

    /**
     * The string frame when the text stands only inside a JSON string without a pattern, outside an
     * escape (where a plain character only counts); else null.
     */
    GrammarFrame.StringFrame insidePlainString() {
        return onlyFrame() instanceof GrammarFrame.StringFrame string && string.escape() == StringLexer.NORMAL
                ? string : null;
    }

    /**
     * Whether the text stands in a context-free grammar (GBNF) or a structural tag's text: in one of
     * their frames, where many characters lead to states met before (inside a word, in free text), so
     * that a walk of the vocabulary is worth remembering where each state's characters lead.
     */
    boolean leadsToStatesMetBefore() {
        return anyFrame(frame -> frame instanceof GrammarFrame.ContextFreeFrame
                || frame instanceof GrammarFrame.TextFrame);
    }

    /** Whether every character from U+0080 on may come next (true only where that is certain). */
    boolean takesEveryNonAscii() {
        return anyFrame(GrammarFrame::takesEveryNonAscii);
    }

    /** Whether a character from U+0080 on may come next (false only where that is certain). */
    boolean mayTakeNonAscii() {
        return anyFrame(GrammarFrame::mayTakeNonAscii);
    }

    /** Whether the text may end here: it is a whole sentence of the grammar. */
    boolean mayEnd() {
        return anyFrame(GrammarFrame::mayEnd);
    }

    /** Whether some frame the text may stand in has {@code property}. */
    private boolean anyFrame(Predicate<GrammarFrame> property) {
        for (GrammarFrame frame : frames) {
            if (property.test(frame)) {
                return true;
            }
        }
        return false;
    }

    /** Whether the text is whole and nothing may follow it, so that the output ends here. */
    boolean done() {
        for (GrammarFrame frame : frames) {
            if (!(frame instanceof GrammarFrame.Done)) {
                return false;
            }
        }
        return true;
    }
}
