package dev.coil.engine.runner;

/** GBNF grammars the tests share. */
final class ContextFreeGrammarTestGrammars {

    /** Sums of products of numbers and parenthesized sums: recursive, so no regular expression holds it. */
    static final String ARITHMETIC = """
            root ::= expr
            expr ::= term (("+" | "-") ws term)*
            term ::= factor ("*" factor)*
            factor ::= [0-9]+ ws | "(" ws expr ")" ws
            ws ::= " "?
            """;

    private ContextFreeGrammarTestGrammars() {
    }
}
