package dev.coil.engine.runner;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.LinkedHashSet;
import java.util.List;

/**
 * What a request's output is held to, token by token: one JSON object (OpenAI's {@code response_format:
 * {"type": "json_object"}}), a value of a JSON schema ({@code json_schema}, vLLM's structured outputs),
 * one of a list of texts (vLLM's {@code choice}), text a regular expression matches (vLLM's
 * {@code regex}), or text a context-free grammar in GBNF holds (vLLM's {@code grammar}, llama.cpp's).
 * Before each token is drawn, the tokens whose text cannot continue the output within the grammar get
 * -infinity; the output ends by itself once it is whole and nothing may follow it (finish reason
 * {@code stop}), and where it could end or go on (a number at the top), the model's end-of-sequence
 * token may end it.
 *
 * <p>{@link #after} puts free text before the output's value: a reasoning block that the prompt leaves
 * open runs to its end tag unconstrained, and the grammar holds the answer after it, as vLLM's
 * structured outputs do with a reasoning parser.
 *
 * <p>Two grammars are equal when made from the same description. The last {@link #KEPT} grammars
 * made are kept: a description made again (an application sends the same schema with every request)
 * gives the same grammar, whose states the engine's allowed sets of tokens were kept for.
 */
public final class OutputGrammar {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final OutputGrammar JSON_OBJECT = new OutputGrammar("json_object", ValueRule.ObjectRule.ANY);
    /** Grammars kept by description. */
    static final int KEPT = 64;
    private static final Cache<String, OutputGrammar> MADE = Caffeine.newBuilder().maximumSize(KEPT).build();

    private final String description;
    private final ValueRule root;
    /** The end of the free text before the value, or null when the value starts the output. */
    private final String preambleEnd;

    private OutputGrammar(String description, ValueRule root) {
        this(description, root, null);
    }

    private OutputGrammar(String description, ValueRule root, String preambleEnd) {
        this.description = description;
        this.root = root;
        this.preambleEnd = preambleEnd;
    }

    /** One JSON object, any keys and values. */
    public static OutputGrammar jsonObject() {
        return JSON_OBJECT;
    }

    /**
     * A value the JSON schema {@code schema} (JSON text) holds valid; the supported keywords are
     * {@link JsonSchemaCompiler}'s. IllegalArgumentException says where the schema holds what is not
     * supported, or is no schema.
     */
    public static OutputGrammar jsonSchema(String schema) {
        JsonNode node = readJson(schema, "the schema");
        return MADE.get("json_schema " + node,
                description -> new OutputGrammar(description, JsonSchemaCompiler.compile(node)));
    }

    /** {@code text} read as JSON; IllegalArgumentException, naming {@code what}, where it is not JSON or empty. */
    private static JsonNode readJson(String text, String what) {
        JsonNode node;
        try {
            node = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(what + " is not JSON: " + e.getOriginalMessage());
        }
        if (node == null || node.isMissingNode()) {
            throw new IllegalArgumentException(what + " is empty");
        }
        return node;
    }

    /**
     * Text that the regular expression {@code pattern} matches whole, as written (vLLM's {@code regex}):
     * the syntax is JSON Schema's, {@link RegexSyntax}'s. IllegalArgumentException says what in the
     * pattern is not supported, or that it matches no text but the empty one.
     */
    public static OutputGrammar regex(String pattern) {
        if (pattern == null || pattern.isEmpty()) {
            throw new IllegalArgumentException("the pattern is empty");
        }
        return MADE.get("regex " + pattern, description -> {
            RegexAutomaton automaton = RegexAutomaton.compile(pattern, 0, Integer.MAX_VALUE);
            if (!automaton.mayContinue(automaton.start())) {
                throw new IllegalArgumentException("the pattern \"" + pattern + "\" matches only the empty text");
            }
            return new OutputGrammar(description, new ValueRule.RegexRule(automaton));
        });
    }

    /**
     * Text that the context-free grammar {@code gbnf} holds whole, from its rule {@code root}: GBNF, the
     * notation of llama.cpp's grammars and of vLLM's {@code structured_outputs.grammar}
     * ({@link ContextFreeGrammar} has what is taken). IllegalArgumentException says what is wrong.
     */
    public static OutputGrammar grammar(String gbnf) {
        if (gbnf == null || gbnf.isBlank()) {
            throw new IllegalArgumentException("the grammar is empty");
        }
        return MADE.get("grammar " + gbnf,
                description -> new OutputGrammar(description, new ValueRule.GrammarRule(ContextFreeGrammar.compile(gbnf))));
    }

    /**
     * Text a structural tag holds (vLLM's {@code structural_tag}, xgrammar's formats: free text with tags
     * begun at triggers, tags holding JSON of a schema, sequences, alternatives, ...): {@code tag} is
     * its JSON text, in either of the forms {@link StructuralTag} reads. IllegalArgumentException says
     * what is wrong and where.
     */
    public static OutputGrammar structuralTag(String tag) {
        JsonNode node = readJson(tag, "the structural tag");
        return MADE.get("structural_tag " + node, description -> new OutputGrammar(description,
                StructuralTag.compile(node)));
    }

    /** Exactly one of {@code choices}, as written (no quotes around them). */
    public static OutputGrammar choice(List<String> choices) {
        if (choices == null || choices.isEmpty()) {
            throw new IllegalArgumentException("choice must hold at least one text");
        }
        for (String choice : choices) {
            if (choice == null || choice.isEmpty()) {
                throw new IllegalArgumentException("choice must not hold an empty text");
            }
        }
        List<String> distinct = List.copyOf(new LinkedHashSet<>(choices));
        String texts;
        try {
            texts = JSON.writeValueAsString(distinct); // ["a, b"] and ["a", "b"] apart
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        return MADE.get("choice " + texts, description -> new OutputGrammar(description,
                new ValueRule.LiteralRule(distinct)));
    }

    /**
     * This grammar's value after free text that runs to the first {@code end} (a reasoning block's end
     * tag): any text up to and with {@code end}, then up to {@link GrammarFrame#MAX_GAP} whitespace
     * characters, then a sentence of this grammar. The output may not end before its value.
     */
    public OutputGrammar after(String end) {
        if (end == null || end.isEmpty()) {
            throw new IllegalArgumentException("the end of the free text must not be empty");
        }
        if (preambleEnd != null) {
            throw new IllegalStateException(this + " already follows free text");
        }
        String quoted;
        try {
            quoted = JSON.writeValueAsString(end);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        return MADE.get("after " + quoted + " " + description, made -> new OutputGrammar(made, root, end));
    }

    /** The state before the output's first character. */
    GrammarState start() {
        return preambleEnd == null ? GrammarState.start(root)
                : GrammarState.of(new GrammarFrame.Preamble(preambleEnd, 0, root));
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof OutputGrammar grammar && grammar.description.equals(description);
    }

    @Override
    public int hashCode() {
        return description.hashCode();
    }

    @Override
    public String toString() {
        return description;
    }
}
