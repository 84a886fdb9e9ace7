package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;

/**
 * The rules a structural tag's formats compile to ({@link StructuralTag}) beside the JSON, regex,
 * grammar and literal rules they hold, and the frames of their text. A text of these rules may be
 * empty, so a rule's start passes the character on to what follows it where its own text may be
 * empty; a frame that may end its rule here passes each character on too, so that a state holds every
 * reading at once (free text and the end tag that closes it, say) until the text tells them apart.
 * Rules compare by identity, frames by their fields.
 */
final class StructuralRules {

    private StructuralRules() {
    }

    /** The frames of {@code rule}'s text starting with {@code c} inside {@code parent}, and where that text may be empty, of what follows it. */
    static void startOrPass(ValueRule rule, GrammarFrame parent, char c, List<GrammarFrame> out) {
        GrammarFrame.startValue(rule, parent, c, out);
        if (ValueRule.matchesEmpty(rule)) {
            parent.valueDone().feed(c, out);
        }
    }

    /** The elements one after another ({@code sequence}; a {@code tag} is its begin, content and end). */
    static final class SequenceRule implements ValueRule.TextRule {
        final List<ValueRule> elements;
        private final boolean empty;

        SequenceRule(List<ValueRule> elements) {
            this.elements = List.copyOf(elements);
            this.empty = this.elements.stream().allMatch(ValueRule::matchesEmpty);
        }

        @Override
        public void start(GrammarFrame parent, char c, List<GrammarFrame> out) {
            new SequenceFrame(this, 0, parent).feed(c, out);
        }

        @Override
        public boolean matchesEmpty() {
            return empty;
        }
    }

    /**
     * A sequence whose elements from {@code next} on are still to come: the parent of element next - 1
     * while that is spelled, and, once it is whole, where the text stands.
     */
    record SequenceFrame(SequenceRule rule, int next, GrammarFrame parent) implements GrammarFrame.TextFrame {
        @Override
        public void feed(char c, List<GrammarFrame> out) {
            startOrPass(rule.elements.get(next), new SequenceFrame(rule, next + 1, parent), c, out);
        }

        @Override
        public GrammarFrame valueDone() {
            return next == rule.elements.size() ? parent.valueDone() : this;
        }

        @Override
        public boolean mayEnd() {
            for (int i = next; i < rule.elements.size(); i++) {
                if (!ValueRule.matchesEmpty(rule.elements.get(i))) {
                    return false;
                }
            }
            return parent.valueDone().mayEnd();
        }
    }

    /**
     * {@code content} from {@code least} to {@code most} times (-1: no most): {@code repeat}, and
     * {@code optional}, {@code star} and {@code plus} as its cases. The content's text may not be empty
     * (else a repetition could go on forever without a character), which {@link StructuralTag} checks.
     */
    static final class RepeatRule implements ValueRule.TextRule {
        final ValueRule content;
        final int least;
        final int most;

        RepeatRule(ValueRule content, int least, int most) {
            if (ValueRule.matchesEmpty(content)) {
                throw new IllegalArgumentException("a repeated format must not match the empty text");
            }
            this.content = content;
            this.least = least;
            this.most = most;
        }

        @Override
        public void start(GrammarFrame parent, char c, List<GrammarFrame> out) {
            new RepeatFrame(this, 0, parent).feed(c, out);
        }

        @Override
        public boolean matchesEmpty() {
            return least == 0;
        }

        /** Past {@code least} and without a most, the count no longer matters: one state for all of them. */
        int counted(int done) {
            return most < 0 ? Math.min(done, least) : done;
        }
    }

    /**
     * A repetition with {@code done} times whole (capped at the least where there is no most): the
     * parent of the next time while it is spelled, and, once it is whole, where the text stands.
     */
    record RepeatFrame(RepeatRule rule, int done, GrammarFrame parent) implements GrammarFrame.TextFrame {
        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (rule.most < 0 || done < rule.most) {
                GrammarFrame.startValue(rule.content, new RepeatFrame(rule, rule.counted(done + 1), parent), c, out);
            }
            if (done >= rule.least) {
                parent.valueDone().feed(c, out);
            }
        }

        @Override
        public GrammarFrame valueDone() {
            return done == rule.most ? parent.valueDone() : this;
        }

        @Override
        public boolean mayEnd() {
            return done >= rule.least && parent.valueDone().mayEnd();
        }
    }

    /**
     * Any text in which none of {@code excluded} appears ({@code any_text}; inside a tag, whose end is one
     * of them, the text runs to the end), of at most {@code maxChars} code points (-1: any number).
     */
    static final class AnyTextRule implements ValueRule.TextRule {
        final StringSearch excluded;
        final int maxChars;

        AnyTextRule(List<String> excluded, int maxChars) {
            this.excluded = new StringSearch(excluded);
            this.maxChars = maxChars;
        }

        @Override
        public void start(GrammarFrame parent, char c, List<GrammarFrame> out) {
            new AnyTextFrame(this, 0, 0, false, parent).feed(c, out);
        }

        @Override
        public boolean matchesEmpty() {
            return true;
        }
    }

    /**
     * Inside free text, its end standing at {@code state} of the rule's search for the excluded strings,
     * {@code chars} code points in where the rule bounds them (0 where it does not, so that the text's
     * states stay few; -1 in a key that stands for every count far from the bound), {@code afterHigh}
     * where the last character was a high surrogate (counted, so that the low one after it is not).
     */
    record AnyTextFrame(AnyTextRule rule, int state, int chars, boolean afterHigh, GrammarFrame parent)
            implements GrammarFrame.TextFrame {
        /** Where no excluded string holds such a character, and one more fits the bound (not mid-pair). */
        @Override
        public boolean takesEveryNonAscii() {
            return !afterHigh && chars >= 0 && (rule.maxChars < 0 || chars < rule.maxChars) && rule.excluded.onlyAscii();
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            int after = rule.excluded.next(state, c);
            boolean bounded = rule.maxChars >= 0;
            int counted = !bounded || afterHigh && Character.isLowSurrogate(c) ? chars : chars + 1;
            if (rule.excluded.found(after).length == 0 && (!bounded || counted <= rule.maxChars)) {
                out.add(new AnyTextFrame(rule, after, counted, bounded && Character.isHighSurrogate(c), parent));
            }
            parent.valueDone().feed(c, out);
        }

        @Override
        public boolean mayEnd() {
            return parent.valueDone().mayEnd();
        }

        /**
         * This frame with its count as -1 where {@code longest} more code points (a token's most) stay
         * within the bound: the tokens allowed here do not depend on the count then.
         */
        AnyTextFrame keyed(int longest) {
            return rule.maxChars >= 0 && chars >= 0 && rule.maxChars - chars >= longest
                    ? new AnyTextFrame(rule, state, -1, afterHigh, parent) : this;
        }
    }

    /**
     * Free text in which a tag starts wherever one of {@code triggers} appears ({@code triggered_tags}):
     * the text from the trigger on is a tag whose begin starts with it, then free text again (none after
     * the first tag with {@code stopAfterFirst}). With {@code atLeastOne}, a tag comes first, before any
     * free text. The free text holds none of {@code excluded} (the enclosing tag's end among them, where
     * that ends it).
     */
    static final class TriggeredTagsRule implements ValueRule.TextRule {
        final List<String> triggers;
        /** Each tag: its begin, content and end ({@link SequenceRule} of three elements). */
        final List<SequenceRule> tags;
        final List<String> begins;
        final boolean atLeastOne;
        final boolean stopAfterFirst;
        /** The triggers (indices 0 to triggers.size() - 1) and the excluded strings after them. */
        final StringSearch search;

        TriggeredTagsRule(List<String> triggers, List<SequenceRule> tags, List<String> begins, boolean atLeastOne,
                boolean stopAfterFirst, List<String> excluded) {
            this.triggers = List.copyOf(triggers);
            this.tags = List.copyOf(tags);
            this.begins = List.copyOf(begins);
            this.atLeastOne = atLeastOne;
            this.stopAfterFirst = stopAfterFirst;
            List<String> searched = new ArrayList<>(triggers);
            searched.addAll(excluded);
            this.search = new StringSearch(searched);
        }

        @Override
        public void start(GrammarFrame parent, char c, List<GrammarFrame> out) {
            if (atLeastOne) {
                for (SequenceRule tag : tags) {
                    GrammarFrame.startValue(tag, new AfterTagFrame(this, parent), c, out);
                }
            } else {
                new FreeTextFrame(this, 0, parent).feed(c, out);
            }
        }

        @Override
        public boolean matchesEmpty() {
            return !atLeastOne;
        }
    }

    /** The parent of a triggered tag: once the tag is whole, free text again, or the end with stopAfterFirst. */
    record AfterTagFrame(TriggeredTagsRule rule, GrammarFrame parent) implements GrammarFrame.TextFrame {
        @Override
        public void feed(char c, List<GrammarFrame> out) {
            valueDone().feed(c, out);
        }

        @Override
        public GrammarFrame valueDone() {
            return rule.stopAfterFirst ? parent.valueDone() : new FreeTextFrame(rule, 0, parent);
        }

        @Override
        public boolean mayEnd() {
            return valueDone().mayEnd();
        }
    }

    /**
     * In the free text of a {@link TriggeredTagsRule}, its end at {@code state} of the rule's search. A
     * trigger whole ends the free text: the tags whose begin starts with it go on from there.
     */
    record FreeTextFrame(TriggeredTagsRule rule, int state, GrammarFrame parent) implements GrammarFrame.TextFrame {
        /** Where no trigger and no excluded string holds such a character: it stays free text. */
        @Override
        public boolean takesEveryNonAscii() {
            return rule.search.onlyAscii();
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            int after = rule.search.next(state, c);
            int[] found = rule.search.found(after);
            for (int index : found) {
                if (index < rule.triggers.size()) {
                    dispatch(rule.triggers.get(index), out);
                }
            }
            if (found.length == 0) {
                out.add(new FreeTextFrame(rule, after, parent));
            }
            parent.valueDone().feed(c, out); // the free text may end before c
        }

        /** The tags whose begin starts with {@code trigger}, the trigger's characters read. */
        private void dispatch(String trigger, List<GrammarFrame> out) {
            for (int i = 0; i < rule.tags.size(); i++) {
                String begin = rule.begins.get(i);
                if (!begin.startsWith(trigger)) {
                    continue;
                }
                GrammarFrame afterBegin = new SequenceFrame(rule.tags.get(i), 1, new AfterTagFrame(rule, parent));
                out.add(begin.length() == trigger.length() ? afterBegin
                        : new GrammarFrame.LiteralFrame(List.of(begin), trigger.length(), afterBegin));
            }
        }

        @Override
        public boolean mayEnd() {
            return parent.valueDone().mayEnd();
        }
    }
}
