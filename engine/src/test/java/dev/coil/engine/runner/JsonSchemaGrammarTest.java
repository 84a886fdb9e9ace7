package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.OffsetTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The grammar of a JSON schema against an independent validator (networknt's, draft 2020-12): every
 * valid instance Jackson writes is taken (compact and indented), invalid ones are refused, and every
 * text a random walk through the grammar completes is valid.
 */
class JsonSchemaGrammarTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** A pydantic-style model: annotations, an optional nullable field, an enum, a bounded list. */
    static final String PERSON = """
            {"title": "Person", "type": "object",
             "properties": {
               "name": {"title": "Name", "type": "string", "minLength": 1, "maxLength": 12},
               "age": {"type": "integer"},
               "email": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}], "default": null},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
               "role": {"enum": ["admin", "user", "guest"]}},
             "required": ["name", "age", "role"]}""";

    /** Recursion through $defs. */
    static final String TREE = """
            {"$defs": {"Node": {"type": "object",
               "properties": {"value": {"type": "number"},
                              "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}, "maxItems": 2}},
               "required": ["value"], "additionalProperties": false}},
             "$ref": "#/$defs/Node"}""";

    /** A map: any keys, integer values. */
    static final String COUNTS = """
            {"type": "object", "additionalProperties": {"type": "integer"}}""";

    /** Listed properties, then additional ones of another type. */
    static final String OPEN_OBJECT = """
            {"type": "object", "properties": {"a": {"type": "boolean"}, "b\\"q": {"const": [1, {"x": null}]}},
             "additionalProperties": {"type": "string", "maxLength": 3}}""";

    /** Exactly two of three optional properties. */
    static final String TWO_OF_THREE = """
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
             "c": {"type": "integer"}}, "minProperties": 2, "maxProperties": 2}""";

    /** A required property, then one or two additional ones. */
    static final String SIZED_OPEN = """
            {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
             "additionalProperties": {"type": "boolean"}, "minProperties": 2, "maxProperties": 3}""";

    /** A required property that takes the one key allowed, so the optional one before it cannot come. */
    static final String REQUIRED_FILLS = """
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
             "required": ["b"], "maxProperties": 1}""";

    /** Several types at the top, and bounded arrays of numbers. */
    static final String MIXED = """
            {"type": ["array", "null", "boolean"], "items": {"type": ["number", "string"], "maxLength": 2},
             "minItems": 2, "maxItems": 4}""";

    /** Integers within bounds: inclusive, exclusive, one-sided, negative. */
    static final String BOUNDS = """
            {"type": "object", "properties": {
               "age": {"type": "integer", "minimum": 0, "maximum": 130},
               "delta": {"type": "integer", "exclusiveMinimum": -5, "maximum": -2},
               "big": {"type": "integer", "minimum": 1000},
               "small": {"type": "integer", "exclusiveMaximum": 7.5},
               "price": {"type": "number", "minimum": 0, "exclusiveMaximum": 100},
               "ratio": {"type": "number", "exclusiveMinimum": -1.5, "maximum": -0.25}},
             "required": ["age", "delta", "big", "small", "price", "ratio"]}""";

    /**
     * Multiples: of an integer, within bounds that leave few, of a fraction (an integer multiple of 1.5
     * is one of 3), and numbers of hundredths within bounds and of quarters. "third" has a maximum
     * because the oracle divides an integer by a fraction in doubles, which misjudge 20-digit multiples.
     */
    static final String MULTIPLES = """
            {"type": "object", "properties": {
               "even": {"type": "integer", "multipleOf": 2},
               "five": {"type": "integer", "minimum": -12, "maximum": 40, "multipleOf": 5},
               "third": {"type": "integer", "exclusiveMinimum": 0, "maximum": 3000000, "multipleOf": 1.5},
               "cents": {"type": "number", "minimum": 0, "exclusiveMaximum": 10, "multipleOf": 0.01},
               "quarter": {"type": "number", "multipleOf": 0.25}},
             "required": ["even", "five", "third", "cents", "quarter"]}""";

    /**
     * Keys held to propertyNames: a pattern with a length bound (the listed "Bad" cannot be written, so
     * it is left out), a set of names, and no names at all.
     */
    static final String NAMES = """
            {"type": "object", "properties": {"id": {"type": "integer"}, "Bad": {"type": "string"}},
             "required": ["id"], "additionalProperties": {"type": "boolean"},
             "propertyNames": {"pattern": "^[a-z]+$", "maxLength": 4}}""";
    static final String NAME_SET = """
            {"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": {"type": "null"},
             "propertyNames": {"enum": ["x", "y", "z\\"q"]}, "maxProperties": 2}""";

    /**
     * Names that allow few texts beside the listed ones: a pattern of four names, two of them listed,
     * and a length bound (a key of three characters that begins as the listed "abc" must end otherwise).
     */
    static final String FEW_NAMES = """
            {"type": "object", "properties": {"a": {"type": "integer"}, "ab": {"type": "integer"}},
             "additionalProperties": {"type": "boolean"}, "propertyNames": {"pattern": "^(a|ab|abc|b)$"}}""";
    static final String SHORT_NAMES = """
            {"type": "object", "properties": {"abc": {"type": "null"}}, "additionalProperties": {"type": "integer"},
             "propertyNames": {"maxLength": 3}}""";

    /**
     * Keys held to patternProperties: pydantic's dict of constrained keys (no additionalProperties: the
     * keys the pattern matches are the ones written), and two patterns of one schema beside a listed
     * property, no other key, and at most three.
     */
    static final String PATTERN_KEYS = """
            {"type": "object", "patternProperties": {"^[a-z]{1,3}$": {"type": "integer", "minimum": 0}}}""";
    static final String PATTERN_KEYS_LISTED = """
            {"type": "object", "properties": {"ID": {"type": "string"}}, "required": ["ID"],
             "patternProperties": {"^x[0-9]$": {"type": "boolean"}, "^y+$": {"type": "boolean"}},
             "additionalProperties": false, "maxProperties": 3}""";

    /** Distinct items (uniqueItems) of an enum, of booleans, and of an enum behind a reference. */
    static final String DISTINCT = """
            {"type": "object", "properties": {
               "colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "uniqueItems": true,
                          "minItems": 1},
               "flags": {"type": "array", "items": {"type": "boolean"}, "uniqueItems": true},
               "sizes": {"type": "array", "items": {"$ref": "#/$defs/Size"}, "uniqueItems": true, "maxItems": 2}},
             "required": ["colors", "flags", "sizes"],
             "$defs": {"Size": {"enum": [1, 2, 3]}}}""";

    /** Distinct strings (uniqueItems over string items, pydantic's set of str): short ones, and two letters. */
    static final String DISTINCT_STRINGS = """
            {"type": "object", "properties": {
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "uniqueItems": true},
               "codes": {"type": "array", "items": {"type": "string", "pattern": "^[ab]$"}, "uniqueItems": true,
                         "minItems": 1}},
             "required": ["tags", "codes"]}""";

    /** Distinct integers (uniqueItems over integers without bounds, pydantic's set of int). */
    static final String DISTINCT_INTEGERS = """
            {"type": "array", "items": {"type": "integer"}, "uniqueItems": true, "maxItems": 5}""";

    /**
     * Distinct integers within bounds (pydantic's set of a constrained int): a range of six, and the
     * multiples of 4 below zero down to -20 (five of them, so maxItems 9 is cut to five).
     */
    static final String DISTINCT_BOUNDED_INTEGERS = """
            {"type": "object", "properties": {
               "range": {"type": "array", "items": {"type": "integer", "minimum": -2, "maximum": 3}, "uniqueItems": true},
               "steps": {"type": "array", "items": {"type": "integer", "minimum": -20, "exclusiveMaximum": 0,
                                                    "multipleOf": 4}, "uniqueItems": true, "maxItems": 9}},
             "required": ["range", "steps"]}""";

    /**
     * Distinct numbers (pydantic's set of float): any number (1, 1.0 and 1e0 being one), halves from 0
     * to 1.5 (four of them), and tenths below 1 written without an exponent.
     */
    static final String DISTINCT_NUMBERS = """
            {"type": "object", "properties": {
               "any": {"type": "array", "items": {"type": "number"}, "uniqueItems": true, "maxItems": 4},
               "halves": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1.5, "multipleOf": 0.5},
                          "uniqueItems": true},
               "tenths": {"type": "array", "items": {"type": "number", "exclusiveMinimum": -1, "exclusiveMaximum": 1},
                          "uniqueItems": true, "maxItems": 3}},
             "required": ["any", "halves", "tenths"]}""";

    /** Strings held to patterns: alone, with length bounds, and with characters JSON must escape. */
    static final String PATTERNS = """
            {"type": "object", "properties": {
               "code": {"type": "string", "pattern": "^[A-Z]{3}-\\\\d{2,4}$"},
               "phone": {"type": "string", "pattern": "\\\\(\\\\d{3}\\\\) \\\\d{3}-\\\\d{4}"},
               "quoted": {"type": "string", "pattern": "^[a\\"\\\\\\\\\\\\n\\\\x01]{1,3}$"},
               "short": {"type": "string", "pattern": "^[a-c]*$", "minLength": 2, "maxLength": 3},
               "word": {"type": "string", "pattern": "^(?:yes|no|.)$", "maxLength": 1}},
             "required": ["code", "phone", "quoted", "short"]}""";

    /** Tuples, as pydantic writes tuple[int, str]: prefixItems, then items for the rest or items false for none. */
    static final String TUPLES = """
            {"type": "object", "properties": {
               "point": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string", "maxLength": 3}],
                         "minItems": 2, "maxItems": 2},
               "head": {"type": "array", "prefixItems": [{"const": "x"}], "items": {"type": "boolean"}, "maxItems": 3},
               "closed": {"type": "array", "prefixItems": [{"type": "null"}], "items": false}},
             "required": ["point", "head"]}""";

    /** A tagged union as pydantic writes it ({@code Field(discriminator="kind")}): oneOf with a discriminator. */
    static final String TAGGED = """
            {"$defs": {
               "Cat": {"properties": {"kind": {"const": "cat", "title": "Kind", "type": "string"},
                                      "lives": {"title": "Lives", "type": "integer"}},
                       "required": ["kind", "lives"], "title": "Cat", "type": "object"},
               "Dog": {"properties": {"kind": {"const": "dog", "title": "Kind", "type": "string"},
                                      "good": {"title": "Good", "type": "boolean"}},
                       "required": ["kind", "good"], "title": "Dog", "type": "object"}},
             "properties": {"pet": {"discriminator": {"mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"},
                                                      "propertyName": "kind"},
                                    "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}], "title": "Pet"}},
             "required": ["pet"], "title": "Owner", "type": "object"}""";

    /**
     * OpenAPI's inheritance: allOf of a referenced base and the extension's own properties, one part
     * nesting another allOf; and an allOf whose second part closes the object to its own names.
     */
    static final String INHERITED = """
            {"$defs": {"Named": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 4}},
                                 "required": ["name"]},
                       "Aged": {"allOf": [{"$ref": "#/$defs/Named"},
                                          {"properties": {"age": {"type": "integer", "minimum": 0}}}]}},
             "type": "object",
             "properties": {
               "pet": {"allOf": [{"$ref": "#/$defs/Aged", "description": "its age and name"},
                                 {"properties": {"kind": {"enum": ["cat", "dog"]}}, "required": ["kind"],
                                  "description": "a pet"}]},
               "tag": {"allOf": [{"properties": {"id": {"type": "integer"}, "note": {"type": "string"}},
                                  "required": ["id"]},
                                 {"properties": {"id": {"type": "integer"}}, "additionalProperties": false}]}},
             "required": ["pet"]}""";

    static Stream<Arguments> instances() {
        return Stream.of(
                Arguments.of(PERSON, List.of(
                        "{\"name\":\"Ann\",\"age\":31,\"role\":\"user\"}",
                        "{\"name\":\"Bo\",\"age\":-2,\"email\":null,\"tags\":[],\"role\":\"admin\"}",
                        "{\"name\":\"C\\u00e9\",\"age\":0,\"email\":\"c@x.y\",\"tags\":[\"a\",\"b\",\"cdefg\"],\"role\":\"guest\"}"),
                        List.of(
                        "{\"name\":\"\",\"age\":1,\"role\":\"user\"}",
                        "{\"name\":\"abcdefghijklm\",\"age\":1,\"role\":\"user\"}",
                        "{\"name\":\"Ann\",\"age\":1.5,\"role\":\"user\"}",
                        "{\"name\":\"Ann\",\"age\":1,\"role\":\"root\"}",
                        "{\"name\":\"Ann\",\"age\":1,\"tags\":[\"a\",\"b\",\"c\",\"d\"],\"role\":\"user\"}",
                        "{\"name\":\"Ann\",\"age\":1,\"tags\":[\"abcdef\"],\"role\":\"user\"}",
                        "{\"name\":\"Ann\",\"age\":1}",
                        "{\"name\":\"Ann\",\"age\":1,\"email\":3,\"role\":\"user\"}")),
                Arguments.of(TREE, List.of(
                        "{\"value\":1}",
                        "{\"value\":-0.5e3,\"children\":[{\"value\":2,\"children\":[]},{\"value\":3}]}",
                        "{\"value\":1,\"children\":[{\"value\":2,\"children\":[{\"value\":4,\"children\":[{\"value\":5}]}]}]}"),
                        List.of(
                        "{\"children\":[]}",
                        "{\"value\":1,\"children\":[{\"value\":\"2\"}]}",
                        "{\"value\":1,\"children\":[{\"value\":2},{\"value\":3},{\"value\":4}]}",
                        "{\"value\":1,\"extra\":true}")),
                Arguments.of(TWO_OF_THREE, List.of("{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":3}", "{\"b\":2,\"c\":3}"),
                        List.of("{}", "{\"a\":1}", "{\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3}")),
                Arguments.of(SIZED_OPEN, List.of("{\"id\":1,\"x\":true}", "{\"id\":1,\"x\":true,\"y\":false}"),
                        List.of("{\"id\":1}", "{\"id\":1,\"x\":true,\"y\":false,\"z\":true}", "{\"x\":true}")),
                Arguments.of(REQUIRED_FILLS, List.of("{\"b\":1}"), List.of("{\"a\":1,\"b\":2}", "{\"a\":1}", "{}")),
                Arguments.of(COUNTS, List.of("{}", "{\"a\":1,\"b b\":-20,\"\\\"\":0}"),
                        List.of("{\"a\":1.5}", "{\"a\":\"1\"}", "[]")),
                Arguments.of(OPEN_OBJECT, List.of(
                        "{}", "{\"a\":true}", "{\"a\":false,\"b\\\"q\":[1,{\"x\":null}]}", "{\"z\":\"abc\"}",
                        "{\"a\":true,\"zz\":\"\",\"y\":\"q\"}", "{\"b\\\"q\":[1,{\"x\":null}],\"c\":\"d\"}"),
                        List.of("{\"a\":\"x\"}", "{\"z\":\"abcd\"}", "{\"z\":1}", "{\"b\\\"q\":[1,{\"x\":0}]}")),
                Arguments.of(BOUNDS, List.of(
                        "{\"age\":0,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":0,\"ratio\":-0.25}",
                        "{\"age\":130,\"delta\":-2,\"big\":99999999999,\"small\":-123456,\"price\":99.999,\"ratio\":-1.4999}",
                        "{\"age\":45,\"delta\":-3,\"big\":1001,\"small\":0,\"price\":12.5,\"ratio\":-1}"),
                        List.of(
                        "{\"age\":131,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-1}",
                        "{\"age\":-1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-5,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-1,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":999,\"small\":7,\"price\":1,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":8,\"price\":1,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":-0.01,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":100,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":100.0,\"ratio\":-1}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-1.5}",
                        "{\"age\":1,\"delta\":-4,\"big\":1000,\"small\":7,\"price\":1,\"ratio\":-0.2}")),
                Arguments.of(MULTIPLES, List.of(
                        "{\"even\":-4,\"five\":-10,\"third\":3,\"cents\":9.99,\"quarter\":-1.75}",
                        "{\"even\":0,\"five\":40,\"third\":300,\"cents\":0,\"quarter\":2.50}",
                        "{\"even\":1234567890,\"five\":0,\"third\":6,\"cents\":0.07,\"quarter\":0}"),
                        List.of(
                        "{\"even\":3,\"five\":0,\"third\":3,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":45,\"third\":3,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":-15,\"third\":3,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":7,\"third\":3,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":4,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":0,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":1.5,\"cents\":1,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":3,\"cents\":10,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":3,\"cents\":1.001,\"quarter\":1}",
                        "{\"even\":2,\"five\":0,\"third\":3,\"cents\":1,\"quarter\":0.3}")),
                Arguments.of(NAMES, List.of("{\"id\":1}", "{\"id\":2,\"ab\":true,\"zzzz\":false}"),
                        List.of("{\"id\":1,\"Bad\":\"x\"}", "{\"id\":1,\"abcde\":true}", "{\"id\":1,\"a1\":true}",
                                "{\"id\":1,\"\":true}", "{\"ab\":true}")),
                Arguments.of(NAME_SET, List.of("{}", "{\"x\":1}", "{\"x\":1,\"y\":null}", "{\"z\\\"q\":null}"),
                        List.of("{\"w\":null}", "{\"x\":1,\"y\":null,\"z\\\"q\":null}", "{\"y\":1}")),
                Arguments.of(FEW_NAMES, List.of("{}", "{\"a\":1,\"ab\":2,\"abc\":true}", "{\"b\":false}",
                        "{\"a\":1,\"b\":true,\"abc\":false}"),
                        List.of("{\"c\":true}", "{\"abcd\":true}", "{\"a\":true}", "{\"abc\":1}")),
                Arguments.of(SHORT_NAMES, List.of("{}", "{\"abc\":null,\"abd\":1}", "{\"é\":2,\"\":3}"),
                        List.of("{\"abcd\":1}", "{\"abc\":1}", "{\"x\":null}")),
                Arguments.of(PATTERN_KEYS, List.of("{}", "{\"a\":1,\"abc\":0}", "{\"zz\":12}"),
                        List.of("{\"a\":-1}", "{\"abc\":\"x\"}", "{\"a\":1.5}")),
                Arguments.of(PATTERN_KEYS_LISTED, List.of("{\"ID\":\"a\"}", "{\"ID\":\"\",\"x1\":true,\"yy\":false}", "{\"ID\":\"q\",\"y\":true}"),
                        List.of("{\"ID\":\"a\",\"x\":true}", "{\"ID\":\"a\",\"x1\":1}", "{\"x1\":true}",
                                "{\"ID\":\"a\",\"x1\":true,\"y\":true,\"yy\":true}", "{\"ID\":\"a\",\"x12\":true}")),
                Arguments.of("{\"type\": \"object\", \"propertyNames\": false}", List.of("{}"),
                        List.of("{\"a\":1}", "{\"\":1}")),
                Arguments.of(DISTINCT, List.of("{\"colors\":[\"red\"],\"flags\":[],\"sizes\":[]}",
                        "{\"colors\":[\"blue\",\"red\",\"green\"],\"flags\":[true,false],\"sizes\":[3,1]}"),
                        List.of("{\"colors\":[],\"flags\":[],\"sizes\":[]}",
                                "{\"colors\":[\"red\",\"red\"],\"flags\":[],\"sizes\":[]}",
                                "{\"colors\":[\"red\"],\"flags\":[true,true],\"sizes\":[]}",
                                "{\"colors\":[\"red\"],\"flags\":[],\"sizes\":[1,2,3]}",
                                "{\"colors\":[\"red\"],\"flags\":[],\"sizes\":[2,2]}",
                                "{\"colors\":[\"pink\"],\"flags\":[],\"sizes\":[]}")),
                Arguments.of(DISTINCT_STRINGS, List.of("{\"tags\":[],\"codes\":[\"a\"]}",
                        "{\"tags\":[\"x\",\"xy\",\"\",\"q\\\"z\"],\"codes\":[\"b\",\"a\"]}"),
                        List.of("{\"tags\":[\"x\",\"x\"],\"codes\":[\"a\"]}", "{\"tags\":[],\"codes\":[]}",
                                "{\"tags\":[],\"codes\":[\"a\",\"a\"]}",
                                "{\"tags\":[],\"codes\":[\"a\",\"b\",\"a\"]}",
                                "{\"tags\":[\"abcd\"],\"codes\":[\"a\"]}")),
                Arguments.of(DISTINCT_INTEGERS, List.of("[]", "[1,-1,0,12]", "[0]", "[-7,70,7]"),
                        List.of("[1,1]", "[0,-0]", "[12,3,12]", "[1,2,3,4,5,6]", "[1.5]")),
                Arguments.of(DISTINCT_BOUNDED_INTEGERS, List.of("{\"range\":[],\"steps\":[]}",
                        "{\"range\":[3,-2,0,1,-1,2],\"steps\":[-4,-20,-8,-16,-12]}", "{\"range\":[-0],\"steps\":[-8]}"),
                        List.of("{\"range\":[1,1],\"steps\":[]}", "{\"range\":[0,-0],\"steps\":[]}",
                                "{\"range\":[4],\"steps\":[]}", "{\"range\":[],\"steps\":[-4,-4]}",
                                "{\"range\":[],\"steps\":[0]}", "{\"range\":[],\"steps\":[-6]}")),
                Arguments.of(DISTINCT_NUMBERS, List.of("{\"any\":[],\"halves\":[],\"tenths\":[]}",
                        "{\"any\":[1,1.5,-2e3,0],\"halves\":[0,1.5,0.5,1],\"tenths\":[0.1,-0.25,0]}",
                        "{\"any\":[1e-2,0.02,-0.0],\"halves\":[1.0],\"tenths\":[-0.5,0.5]}"),
                        // (networknt's validator tells 1 from 1.0 where JSON Schema does not: such pairs are
                        // checked against the grammar alone, in aDistinctNumberIsNotWrittenTwice.)
                        List.of("{\"any\":[1.5,1.50],\"halves\":[],\"tenths\":[]}",
                                "{\"any\":[1e2,100.0],\"halves\":[],\"tenths\":[]}",
                                "{\"any\":[],\"halves\":[0.5,0.50],\"tenths\":[]}",
                                "{\"any\":[],\"halves\":[2],\"tenths\":[]}",
                                "{\"any\":[],\"halves\":[],\"tenths\":[0.5,0.5]}",
                                "{\"any\":[],\"halves\":[],\"tenths\":[1]}")),
                Arguments.of(PATTERNS, List.of(
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\\\"\",\"short\":\"ab\"}",
                        "{\"code\":\"XYZ-1234\",\"phone\":\"(000) 000-0000\",\"quoted\":\"\\\\\\n\\u0001\",\"short\":\"cca\",\"word\":\"\u00e9\"}",
                        "{\"code\":\"AAA-000\",\"phone\":\"(123) 456-7890\",\"quoted\":\"aaa\",\"short\":\"bc\",\"word\":\"-\"}"),
                        List.of(
                        "{\"code\":\"AB-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"ab\"}",
                        "{\"code\":\"ABC-1\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"ab\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"555 123-4567\",\"quoted\":\"a\",\"short\":\"ab\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"b\",\"short\":\"ab\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"aaaa\",\"short\":\"ab\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"a\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"abca\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"ad\"}",
                        "{\"code\":\"ABC-12\",\"phone\":\"(555) 123-4567\",\"quoted\":\"a\",\"short\":\"ab\",\"word\":\"yes\"}")),
                Arguments.of(TUPLES, List.of(
                        "{\"point\":[1,\"ab\"],\"head\":[\"x\",true,false]}",
                        "{\"point\":[-5,\"\"],\"head\":[],\"closed\":[null]}",
                        "{\"point\":[0,\"abc\"],\"head\":[\"x\"],\"closed\":[]}"),
                        List.of(
                        "{\"point\":[1],\"head\":[]}",
                        "{\"point\":[\"a\",1],\"head\":[]}",
                        "{\"point\":[1,\"abcd\"],\"head\":[]}",
                        "{\"point\":[1,\"a\",2],\"head\":[]}",
                        "{\"point\":[1,\"a\"],\"head\":[\"y\"]}",
                        "{\"point\":[1,\"a\"],\"head\":[\"x\",1]}",
                        "{\"point\":[1,\"a\"],\"head\":[\"x\",true,true,true]}",
                        "{\"point\":[1,\"a\"],\"head\":[],\"closed\":[null,null]}")),
                Arguments.of(TAGGED, List.of(
                        "{\"pet\":{\"kind\":\"cat\",\"lives\":9}}",
                        "{\"pet\":{\"kind\":\"dog\",\"good\":true}}"),
                        List.of(
                        "{\"pet\":{\"kind\":\"cat\",\"good\":true}}",
                        "{\"pet\":{\"kind\":\"bird\",\"lives\":1}}",
                        "{\"pet\":{\"lives\":9}}")),
                Arguments.of(INHERITED, List.of(
                        "{\"pet\":{\"name\":\"Rex\",\"kind\":\"dog\"}}",
                        "{\"pet\":{\"name\":\"Tom\",\"age\":3,\"kind\":\"cat\"},\"tag\":{\"id\":7}}"),
                        List.of(
                        "{\"pet\":{\"kind\":\"dog\"}}",
                        "{\"pet\":{\"name\":\"Rexie\",\"kind\":\"dog\"}}",
                        "{\"pet\":{\"name\":\"Rex\",\"age\":-1,\"kind\":\"dog\"}}",
                        "{\"pet\":{\"name\":\"Rex\",\"kind\":\"cow\"}}",
                        "{\"pet\":{\"name\":\"Rex\"}}",
                        "{\"pet\":{\"name\":\"Rex\",\"kind\":\"dog\"},\"tag\":{\"id\":7,\"note\":\"x\"}}",
                        "{\"pet\":{\"name\":\"Rex\",\"kind\":\"dog\"},\"tag\":{}}")),
                Arguments.of(MIXED, List.of("null", "true", "[1,\"ab\"]", "[1.5,2,3,\"\"]"),
                        List.of("[1]", "[1,2,3,4,5]", "[1,\"abc\"]", "{}", "\"s\"")));
    }

    @ParameterizedTest
    @MethodSource("instances")
    void takesValidInstancesAndRefusesInvalidOnes(String schema, List<String> valid, List<String> invalid)
            throws Exception {
        OutputGrammar grammar = OutputGrammar.jsonSchema(schema);
        for (String text : valid) {
            assertThat(SchemaOracle.errors(schema, text)).as("the oracle on %s", text).isEmpty();
            Object value = JSON.readTree(text);
            assertTakesWhole(grammar, JSON.writeValueAsString(value));
            if (!schema.contains("\"const\": [")) { // enum and const values are spelled compact
                assertTakesWhole(grammar, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(value));
            }
            assertTakesWhole(grammar, text);
        }
        for (String text : invalid) {
            assertThat(SchemaOracle.errors(schema, text)).as("the oracle on %s", text).isNotEmpty();
            GrammarCursor cursor = new GrammarCursor(grammar);
            boolean taken = cursor.acceptAll(text);
            assertThat(taken && cursor.mayEnd()).as("the grammar took %s", text).isFalse();
        }
    }

    private static void assertTakesWhole(OutputGrammar grammar, String text) {
        GrammarCursor cursor = new GrammarCursor(grammar);
        for (int i = 0; i < text.length(); i++) {
            assertThat(cursor.done()).as("done before %d of %s", i, text).isFalse();
            assertThat(cursor.accept(text.charAt(i))).as("character %d of %s", i, text).isTrue();
        }
        assertThat(cursor.mayEnd()).as("may end after %s", text).isTrue();
    }

    /** An integer already in a distinct array cannot end again; 0 and -0 are one integer. */
    @Test
    void aDistinctIntegerIsNotWrittenTwice() {
        GrammarCursor zero = new GrammarCursor(OutputGrammar.jsonSchema(DISTINCT_INTEGERS));
        assertThat(zero.acceptAll("[0,")).isTrue();
        assertThat(zero.copy().accept('0')).as("a second 0").isFalse();
        assertThat(zero.copy().acceptAll("-0")).as("-0 after 0").isFalse();
        assertThat(zero.acceptAll("5,5")).isTrue();
        assertThat(zero.copy().accept(',')).as("a second 5").isFalse();
        assertThat(zero.copy().accept(']')).as("a second 5, last").isFalse();
        assertThat(zero.acceptAll("5,-5]")).isTrue();
        // At the most digits an integer cannot grow: the digit that would repeat one is refused there.
        GrammarCursor longest = new GrammarCursor(OutputGrammar.jsonSchema(DISTINCT_INTEGERS));
        assertThat(longest.acceptAll("[12345678901234567890,1234567890123456789")).isTrue();
        assertThat(longest.copy().accept('0')).as("the same 20 digits").isFalse();
        assertThat(longest.acceptAll("1]")).isTrue();
    }

    /**
     * Within bounds, a character is refused where every integer it could still end as is written: after
     * 10 to 15 (of 5 to 15), no 1 begins, though 5 to 9 do; after -1, no minus sign in 0 to 3 and -1.
     */
    @Test
    void aDistinctBoundedIntegerIsNotBegunWhereEveryEndIsWritten() {
        GrammarCursor teens = new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"array\", \"items\": "
                + "{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 15}, \"uniqueItems\": true}"));
        assertThat(teens.acceptAll("[10,11,12,13,14,15,")).isTrue();
        assertThat(teens.copy().accept('1')).as("a 1 after 10 to 15").isFalse();
        assertThat(teens.copy().acceptAll("9]")).isTrue();
        GrammarCursor small = new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"array\", \"items\": "
                + "{\"type\": \"integer\", \"minimum\": -1, \"maximum\": 3}, \"uniqueItems\": true}"));
        assertThat(small.acceptAll("[-1,")).isTrue();
        assertThat(small.copy().accept('-')).as("a minus after -1").isFalse();
        assertThat(small.acceptAll("0,")).isTrue();
        assertThat(small.copy().accept('-')).as("a minus sign after -1 and 0 (-0 is 0)").isFalse();
        assertThat(small.acceptAll("3,2,1")).isTrue();
        assertThat(small.copy().accept(',')).as("a sixth item of five integers").isFalse();
        assertThat(small.accept(']')).isTrue();
    }

    /**
     * A number already in a distinct array cannot end again, however it is spelled (1.0, 1e0, 10e-1), and
     * a character is refused where every value it could still end as is written: after 0, 0.5 and 1 of
     * the halves, 1 goes on only as 1.5, and no 0 begins.
     */
    @Test
    void aDistinctNumberIsNotWrittenTwice() {
        GrammarCursor any = new GrammarCursor(OutputGrammar.jsonSchema(
                "{\"type\": \"array\", \"items\": {\"type\": \"number\"}, \"uniqueItems\": true}"));
        assertThat(any.acceptAll("[1,")).isTrue();
        for (String same : List.of("1.0", "1e0", "10e-1", "0.1E1", "1.000")) {
            GrammarCursor again = any.copy();
            assertThat(again.acceptAll(same)).as(same).isTrue();
            assertThat(again.copy().accept(']')).as("%s after 1", same).isFalse();
            assertThat(again.accept(',')).as("%s after 1", same).isFalse();
        }
        assertThat(any.acceptAll("0,")).isTrue();
        // Past its exponent's mark a zero mantissa is 0 whatever follows: written, so not begun.
        assertThat(any.copy().acceptAll("0e")).as("0e after 0").isFalse();
        assertThat(any.copy().acceptAll("-0.0E")).as("-0.0E after 0").isFalse();
        assertThat(any.copy().acceptAll("0.5e")).as("0.5e").isTrue();
        assertThat(any.acceptAll("1e999,1e99")).isTrue();
        assertThat(any.copy().accept('9')).as("the exponent's last digit repeating 1e999").isFalse();
        assertThat(any.copy().acceptAll("8]")).isTrue();
        GrammarCursor halves = new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"array\", \"items\": "
                + "{\"type\": \"number\", \"minimum\": 0, \"maximum\": 1.5, \"multipleOf\": 0.5}, \"uniqueItems\": true}"));
        assertThat(halves.acceptAll("[0,0.5,1,")).isTrue();
        assertThat(halves.copy().accept('0')).as("a 0 after 0 and 0.5").isFalse();
        GrammarCursor last = halves.copy();
        assertThat(last.accept('1')).isTrue();
        assertThat(last.copy().accept(']')).as("1 again").isFalse();
        assertThat(last.acceptAll(".5]")).isTrue();
    }

    /** A string already in a distinct array cannot end again, however its characters were escaped. */
    @Test
    void aDistinctStringIsNotWrittenTwice() {
        GrammarCursor short1 = new GrammarCursor(OutputGrammar.jsonSchema(
                "{\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 1}, \"uniqueItems\": true}"));
        assertThat(short1.acceptAll("[\"\\\"\",\"")).isTrue();
        assertThat(short1.copy().acceptAll("\\\"\"")).as("a second quote").isFalse();
        assertThat(short1.acceptAll("a\",\"")).isTrue();
        assertThat(short1.copy().acceptAll("a\"")).as("a second a").isFalse();
        assertThat(short1.acceptAll("b\"]")).isTrue();
        GrammarCursor any = new GrammarCursor(OutputGrammar.jsonSchema(
                "{\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"uniqueItems\": true}"));
        assertThat(any.acceptAll("[\"ab\",\"ab")).isTrue();
        assertThat(any.copy().accept('"')).as("a second ab").isFalse();
        assertThat(any.acceptAll("c\"]")).isTrue();
        GrammarCursor two = new GrammarCursor(OutputGrammar.jsonSchema(DISTINCT_STRINGS));
        assertThat(two.acceptAll("{\"tags\":[],\"codes\":[\"a\",\"b\"")).isTrue();
        assertThat(two.copy().accept(',')).as("no third code is left").isFalse();
        assertThat(two.acceptAll("]}")).isTrue();
    }

    /**
     * An additional key never spells a listed property's name, so a key is not begun where every name
     * it could still become is listed: with {@code a} and {@code ab} written, only {@code abc} and
     * {@code b} are left.
     */
    @Test
    void aKeyThatCouldOnlyEndAsAListedNameIsNotBegun() {
        GrammarCursor few = new GrammarCursor(OutputGrammar.jsonSchema(FEW_NAMES));
        assertThat(few.acceptAll("{\"a\":1,\"ab\":2,\"a")).isTrue();
        assertThat(few.copy().accept('"')).as("a second a").isFalse();
        assertThat(few.copy().acceptAll("b\"")).as("a second ab").isFalse();
        assertThat(few.acceptAll("bc\":true")).isTrue();
        GrammarCursor fewer = new GrammarCursor(OutputGrammar.jsonSchema(
                FEW_NAMES.replace("^(a|ab|abc|b)$", "^(a|ab|b)$")));
        assertThat(fewer.acceptAll("{\"a\":1,\"ab\":2,\"")).isTrue();
        assertThat(fewer.copy().accept('a')).as("a key that could only be a or ab").isFalse();
        assertThat(fewer.acceptAll("b\":true}")).isTrue();
        GrammarCursor nothingLeft = new GrammarCursor(OutputGrammar.jsonSchema(
                FEW_NAMES.replace("^(a|ab|abc|b)$", "^(a|ab)$")));
        assertThat(nothingLeft.acceptAll("{\"a\":1,\"ab\":2")).isTrue();
        assertThat(nothingLeft.copy().accept(',')).as("no name left for a third key").isFalse();
        GrammarCursor shortNames = new GrammarCursor(OutputGrammar.jsonSchema(SHORT_NAMES));
        assertThat(shortNames.acceptAll("{\"abc\":null,\"ab")).isTrue();
        assertThat(shortNames.copy().accept('c')).as("a second abc").isFalse();
        assertThat(shortNames.acceptAll("d\":1}")).isTrue();
    }

    /**
     * Stricter than JSON Schema where structured outputs are: without additionalProperties no other key
     * is spelled, and the listed properties come in their order.
     */
    @Test
    void listedPropertiesComeAloneAndInTheirOrder() throws Exception {
        OutputGrammar grammar = OutputGrammar.jsonSchema(PERSON);
        for (String text : List.of("{\"name\":\"Ann\",\"age\":1,\"role\":\"user\",\"x\":1}",
                "{\"age\":1,\"name\":\"Ann\",\"role\":\"user\"}")) {
            assertThat(SchemaOracle.errors(PERSON, text)).as("the oracle on %s", text).isEmpty();
            assertThat(new GrammarCursor(grammar).acceptAll(text)).as(text).isFalse();
        }
    }

    @Test
    void aValueThatMayGoOnMayEndButIsNotDone() {
        OutputGrammar grammar = OutputGrammar.jsonSchema("{\"enum\": [1, 12, 123, \"1\"]}");
        GrammarCursor cursor = new GrammarCursor(grammar);
        assertThat(cursor.accept('1')).isTrue();
        assertThat(cursor.mayEnd()).isTrue();
        assertThat(cursor.done()).isFalse();
        assertThat(cursor.accept('2')).isTrue();
        assertThat(cursor.mayEnd()).isTrue();
        assertThat(cursor.accept('4')).isFalse();
        assertThat(cursor.accept('3')).isTrue();
        assertThat(cursor.done()).isTrue();

        GrammarCursor number = new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"number\"}"));
        assertThat(number.acceptAll("-0.5")).isTrue();
        assertThat(number.mayEnd()).isTrue();
        assertThat(number.accept(' ')).as("nothing follows the top value").isFalse();
        assertThat(number.acceptAll("e+7")).isTrue();
        assertThat(number.mayEnd()).isTrue();
        assertThat(number.done()).isFalse();
    }

    /** A number's parts are bounded, so that a model cannot spin one out forever. */
    @Test
    void numbersHaveAtMostTwentyDigitsAPartAndThreeInTheExponent() {
        OutputGrammar number = OutputGrammar.jsonSchema("{\"type\": \"number\"}");
        GrammarCursor cursor = new GrammarCursor(number);
        assertThat(cursor.acceptAll("-" + "9".repeat(GrammarFrame.NumberFrame.MAX_DIGITS))).isTrue();
        assertThat(cursor.accept('9')).isFalse();
        assertThat(cursor.acceptAll("." + "1".repeat(GrammarFrame.NumberFrame.MAX_DIGITS))).isTrue();
        assertThat(cursor.accept('1')).isFalse();
        assertThat(cursor.acceptAll("e-308")).isTrue();
        assertThat(cursor.accept('0')).isFalse();
        assertThat(cursor.mayEnd()).isTrue();
        assertThat(new GrammarCursor(number).acceptAll("0" + "0")).as("no leading zeros").isFalse();
        assertThat(new GrammarCursor(number).acceptAll(String.valueOf(Long.MIN_VALUE))).isTrue();

        GrammarCursor bounded = new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"number\", \"minimum\": 0}"));
        assertThat(bounded.acceptAll("1")).isTrue();
        assertThat(bounded.accept('e')).as("a bounded number has no exponent").isFalse();
        assertThat(new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"number\", \"minimum\": 0}")).accept('-'))
                .as("-0 is 0, but nothing after it is").isTrue();
    }

    /** In a string held to a pattern each character has Jackson's one spelling, so no escape leads nowhere. */
    @Test
    void patternedStringsSpellEachCharacterOneWay() {
        OutputGrammar grammar = OutputGrammar.jsonSchema(
                "{\"type\": \"string\", \"pattern\": \"^[a\\\\n\\\\x01/]+$\"}");
        GrammarCursor cursor = new GrammarCursor(grammar);
        assertThat(cursor.acceptAll("\"a\\n\\u0001\\u001/\"")).isFalse(); // \\u001/ is no escape
        for (String taken : List.of("\"a\\n\\u0001/\"", "\"\\u0001\\u0001\"")) {
            cursor = new GrammarCursor(grammar);
            assertThat(cursor.acceptAll(taken)).as(taken).isTrue();
            assertThat(cursor.done()).as(taken).isTrue();
        }
        for (String refused : List.of("\"\\u000a", "\"\\/", "\"\\u0061", "\"\\t", "\"\\u0002", "\"b")) {
            assertThat(new GrammarCursor(grammar).acceptAll(refused)).as(refused).isFalse();
        }
        assertThat(new GrammarCursor(OutputGrammar.jsonSchema("{\"type\": \"string\", \"pattern\": \"^a*$\"}"))
                .acceptAll("\"\\")).as("no escape the pattern could take").isFalse();
    }

    @Test
    void choicesAreTakenAsWritten() {
        OutputGrammar grammar = OutputGrammar.choice(List.of("yes", "no", "no way", "{\"a\": 1}"));
        for (String choice : List.of("yes", "no", "no way", "{\"a\": 1}")) {
            GrammarCursor cursor = new GrammarCursor(grammar);
            assertThat(cursor.acceptAll(choice)).as(choice).isTrue();
            assertThat(cursor.mayEnd()).as(choice).isTrue();
        }
        GrammarCursor cursor = new GrammarCursor(grammar);
        assertThat(cursor.acceptAll("no")).isTrue();
        assertThat(cursor.done()).as("\"no way\" may follow").isFalse();
        assertThat(cursor.acceptAll(" way")).isTrue();
        assertThat(cursor.done()).isTrue();
        assertThat(new GrammarCursor(grammar).accept('"')).isFalse();
        assertThat(new GrammarCursor(grammar).acceptAll("yes!")).isFalse();
    }

    /**
     * Soundness: walks that pick each next character at random among those the grammar takes, from an
     * alphabet of JSON's punctuation, digits, letters and the schema's own words, and every text that
     * ends (done, or may end and the walk stops there) is valid for the validator.
     */
    @ParameterizedTest
    @MethodSource("instances")
    void everyTextARandomWalkFinishesIsValid(String schema) throws Exception {
        OutputGrammar grammar = OutputGrammar.jsonSchema(schema);
        StringBuilder alphabetText = new StringBuilder("{}[]:,\" \n\\-+.eE0123456789abtrufnlsxyzuABF");
        for (char c : schema.toCharArray()) {
            if (alphabetText.indexOf(String.valueOf(c)) < 0 && c >= 0x20) {
                alphabetText.append(c);
            }
        }
        char[] alphabet = alphabetText.toString().toCharArray();
        Random random = new Random(schema.hashCode());
        int finished = 0;
        for (int walk = 0; walk < 300; walk++) {
            GrammarCursor cursor = new GrammarCursor(grammar);
            StringBuilder text = new StringBuilder();
            while (text.length() < 300 && !cursor.done() && !(cursor.mayEnd() && random.nextInt(4) == 0)) {
                List<Character> taken = new ArrayList<>();
                List<Double> weights = new ArrayList<>();
                double total = 0;
                for (char c : alphabet) {
                    if (cursor.copy().accept(c)) {
                        // Closing characters grow likelier as the text grows, so that walks end.
                        double weight = "\"}]".indexOf(c) >= 0 ? 1 + text.length() / 8.0
                                : c == ' ' || c == '\n' ? 0.2 : 1;
                        taken.add(c);
                        weights.add(weight);
                        total += weight;
                    }
                }
                assertThat(taken).as("a character continues %s", text).isNotEmpty();
                double pick = random.nextDouble() * total;
                int at = 0;
                while (at < taken.size() - 1 && (pick -= weights.get(at)) > 0) {
                    at++;
                }
                assertThat(cursor.accept(taken.get(at))).isTrue();
                text.append(taken.get(at));
            }
            if (cursor.mayEnd()) {
                finished++;
                assertThat(SchemaOracle.errors(schema, text.toString())).as("the oracle on %s", text).isEmpty();
            }
        }
        assertThat(finished).as("walks that finished").isGreaterThan(100);
    }

    static Stream<Arguments> unsupportedSchemas() {
        return Stream.of(
                Arguments.of("{\"type\": \"string\", \"pattern\": \"(?=a)b\"}",
                        "at #/pattern: the pattern \"(?=a)b\" at character 1: lookaround is not supported"),
                Arguments.of("{\"type\": \"string\", \"pattern\": \"^(ab)*$\", \"minLength\": 3, \"maxLength\": 3}",
                        "matches no text of 3 to 3 characters"),
                Arguments.of("{\"type\": \"string\", \"pattern\": 7}", "at #/pattern: must be a string"),
                Arguments.of("{\"type\": \"number\", \"minimum\": 1, \"exclusiveMaximum\": 1}",
                        "no number lies between"),
                Arguments.of("{\"type\": \"integer\", \"minimum\": 5, \"exclusiveMaximum\": 5}",
                        "no integer lies between"),
                Arguments.of("{\"type\": \"object\", \"dependentRequired\": {}}",
                        "\"dependentRequired\" is not supported"),
                Arguments.of("{\"type\": \"object\", \"patternProperties\": {\"^a\": {\"type\": \"integer\"}, "
                        + "\"^b\": {\"type\": \"string\"}}}",
                        "at #/patternProperties: patterns of different schemas are not supported"),
                Arguments.of("{\"type\": \"object\", \"properties\": {\"ab\": {}}, "
                        + "\"patternProperties\": {\"^a.*$\": {\"type\": \"integer\"}}}",
                        "the property \"ab\" matches a pattern of patternProperties, which is not supported"),
                Arguments.of("{\"type\": \"object\", \"patternProperties\": {\"^a$\": {}}, "
                        + "\"additionalProperties\": {\"type\": \"integer\"}}",
                        "additionalProperties beside patternProperties is not supported"),
                Arguments.of("{\"type\": \"object\", \"patternProperties\": {\"^a$\": {}}, "
                        + "\"propertyNames\": {\"maxLength\": 2}}",
                        "patternProperties beside propertyNames is not supported"),
                Arguments.of("{\"type\": \"object\", \"patternProperties\": {\"(?=a)\": {}}}",
                        "at #/patternProperties: the pattern"),
                Arguments.of("{\"type\": \"array\", \"items\": {\"type\": \"object\"}, \"uniqueItems\": true}",
                        "uniqueItems: true is held only for items of enum, const, boolean, string, integer or number"),
                Arguments.of("{\"type\": \"array\", \"items\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, "
                        + "\"multipleOf\": 0.5}, \"uniqueItems\": true, \"minItems\": 4}",
                        "minItems 4 asks for more distinct items than the 3 numbers items allows"),
                Arguments.of("{\"type\": \"array\", \"items\": {\"type\": \"integer\", \"minimum\": 0, "
                        + "\"maximum\": 2}, \"uniqueItems\": true, \"minItems\": 4}",
                        "minItems 4 asks for more distinct items than the 3 numbers items allows"),
                Arguments.of("{\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": \"^[ab]$\"}, "
                        + "\"uniqueItems\": true, \"minItems\": 3}",
                        "minItems 3 asks for more distinct items than the 2 strings items allows"),
                Arguments.of("{\"type\": \"array\", \"uniqueItems\": \"yes\"}",
                        "at #/uniqueItems: uniqueItems must be true or false"),
                Arguments.of("{\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\"]}, \"uniqueItems\": true, "
                        + "\"minItems\": 3}", "minItems 3 asks for more distinct items than the 2 values items allows"),
                Arguments.of("{\"type\": \"object\", \"properties\": {\"Id\": {}}, \"required\": [\"Id\"], "
                        + "\"propertyNames\": {\"pattern\": \"^[a-z]+$\"}}",
                        "the required property \"Id\" is not a name propertyNames allows"),
                Arguments.of("{\"type\": \"object\", \"propertyNames\": {\"$ref\": \"#\"}}",
                        "at #/propertyNames: the keyword \"$ref\" in propertyNames is not supported"),
                Arguments.of("{\"type\": \"integer\", \"multipleOf\": 0}",
                        "at #/multipleOf: multipleOf must be a number greater than 0"),
                Arguments.of("{\"type\": \"number\", \"multipleOf\": \"2\"}",
                        "multipleOf must be a number greater than 0"),
                Arguments.of("{\"type\": \"number\", \"multipleOf\": 1e-21}",
                        "has more than 20 places after the point"),
                Arguments.of("{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 4, \"multipleOf\": 5}",
                        "no integer multiple of 5 lies between its minimum and maximum"),
                Arguments.of("{\"type\": \"number\", \"exclusiveMinimum\": 0.5, \"maximum\": 0.7, \"multipleOf\": 0.25}",
                        "no multiple of 0.25 lies between its minimum and maximum"),
                Arguments.of("{\"type\": \"object\", \"minProperties\": 3, \"maxProperties\": 2}",
                        "minProperties 3 is more than maxProperties 2"),
                Arguments.of("{\"type\": \"object\", \"properties\": {\"a\": {}}, \"minProperties\": 2}",
                        "minProperties 2 asks for more keys than the 1 properties allow"),
                Arguments.of("{\"type\": \"object\", \"properties\": {\"a\": {}, \"b\": {}}, \"required\": [\"a\", \"b\"], "
                        + "\"maxProperties\": 1}", "maxProperties 1 is less than the 2 required properties"),
                Arguments.of("{\"type\": \"object\", \"maxProperties\": 1.5}", "maxProperties must be a non-negative integer"),
                Arguments.of("{\"type\": \"array\", \"prefixItems\": [{}], \"items\": false, \"minItems\": 2}",
                        "minItems 2 asks for more items than the 1 that items false allows"),
                Arguments.of("{\"type\": \"array\", \"prefixItems\": {}}", "at #/prefixItems: must be an array"),
                Arguments.of("{\"type\": \"array\", \"uniqueItems\": true}",
                        "uniqueItems: true is held only for items of enum, const, boolean, string, integer or number"),
                Arguments.of("{\"type\": \"string\", \"items\": {}}", "\"items\" is not supported for type string"),
                Arguments.of("{\"$ref\": \"http://example.com/s.json\"}", "only references within the schema"),
                Arguments.of("{\"$ref\": \"#/$defs/Missing\"}", "at #/$ref: \"#/$defs/Missing\" points to nothing"),
                Arguments.of("{\"$defs\": {\"A\": {\"anyOf\": [{\"$ref\": \"#/$defs/A\"}, {\"type\": \"null\"}]}},"
                        + " \"$ref\": \"#/$defs/A\"}", "references go round without a value"),
                Arguments.of("{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}",
                        "required names \"b\", which properties does not define"),
                Arguments.of("false", "the schema false allows no value"),
                Arguments.of("{\"properties\": {\"a\": false}}", "at #/properties/a: the schema false"),
                Arguments.of("{\"type\": \"strung\"}", "unknown type \"strung\""),
                Arguments.of("{\"allOf\": [{\"type\": \"string\"}, {\"maxLength\": 2}]}",
                        "allOf of more than one schema is supported for object schemas only, not type \"string\""),
                Arguments.of("{\"allOf\": [{\"properties\": {\"a\": {\"type\": \"string\"}}},"
                        + " {\"properties\": {\"a\": {\"type\": \"integer\"}}}]}",
                        "the property \"a\" has two different schemas in allOf"),
                Arguments.of("{\"allOf\": [{\"properties\": {\"a\": {}}, \"additionalProperties\": false},"
                        + " {\"properties\": {\"b\": {}}, \"required\": [\"b\"]}]}",
                        "allOf requires \"b\", which a part closed to other properties leaves out"),
                Arguments.of("{\"minLength\": 3, \"maxLength\": 2}", "minLength 3 is more than maxLength 2"),
                Arguments.of("{\"type\": \"string\", \"enum\": [1, 2]}", "no value of enum or const is of the schema's type"),
                Arguments.of("{\"anyOf\": [{\"type\": \"string\"}], \"type\": \"string\"}", "\"type\" beside anyOf"),
                Arguments.of("{\"type\": \"array\", \"maxItems\": -1}", "maxItems must be a non-negative integer"),
                Arguments.of("{\"type\": ", "the schema is not JSON"),
                Arguments.of("[]", "a schema must be an object or a boolean"));
    }

    @ParameterizedTest
    @MethodSource("unsupportedSchemas")
    void refusesWhatItCannotHoldTheOutputTo(String schema, String message) {
        assertThatThrownBy(() -> OutputGrammar.jsonSchema(schema))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
    }

    @Test
    void uniqueItemsFalseAsksNothing() {
        GrammarCursor cursor = new GrammarCursor(OutputGrammar.jsonSchema(
                "{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"uniqueItems\": false}"));
        assertThat(cursor.acceptAll("[1,1]")).isTrue();
        assertThat(cursor.done()).isTrue();
    }

    @Test
    void annotationsAndFormatAreReadPast() {
        OutputGrammar grammar = OutputGrammar.jsonSchema("""
                {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "T", "description": "d",
                 "type": "string", "format": "uri", "examples": ["x"], "default": "y", "maxLength": 2}""");
        GrammarCursor cursor = new GrammarCursor(grammar);
        assertThat(cursor.acceptAll("\"ab\"")).isTrue();
        assertThat(cursor.done()).isTrue();
        assertThat(new GrammarCursor(grammar).acceptAll("\"abc\"")).isFalse();
    }

    /** Every day of 2023 and 2024 is a date; days no calendar has are not. */
    @Test
    void aDateIsADayOfTheCalendar() {
        OutputGrammar date = OutputGrammar.jsonSchema("{\"type\": \"string\", \"format\": \"date\"}");
        for (LocalDate day = LocalDate.of(2023, 1, 1); day.getYear() < 2025; day = day.plusDays(1)) {
            assertThat(takesWhole(date, "\"" + day + "\"")).as("%s", day).isTrue();
        }
        for (String day : List.of("2000-02-29", "2400-02-29", "0000-02-29", "1996-02-29", "9999-12-31")) {
            assertThat(takesWhole(date, "\"" + day + "\"")).as(day).isTrue();
        }
        for (String day : List.of("2023-02-29", "1900-02-29", "2100-02-29", "2024-02-30", "2024-04-31",
                "2024-13-01", "2024-00-10", "2024-01-00", "2024-1-01", "24-01-01", "2024-01-01T")) {
            assertThat(takesWhole(date, "\"" + day + "\"")).as(day).isFalse();
        }
    }

    /**
     * Strings of a known format come out as what Java parses: random walks through each format's
     * grammar, every finished text parsed by java.time, java.util.UUID or a check of its parts.
     */
    @ParameterizedTest
    @ValueSource(strings = {"date", "time", "date-time", "uuid", "ipv4", "email"})
    void everyFormattedStringARandomWalkFinishesParses(String format) {
        OutputGrammar grammar = OutputGrammar.jsonSchema("{\"type\": \"string\", \"format\": \"" + format + "\"}");
        char[] alphabet = "\"0123456789-:.TZ+abcdefABCDEF@xyz_.".toCharArray();
        Random random = new Random(format.hashCode());
        int finished = 0;
        for (int walk = 0; walk < 200; walk++) {
            GrammarCursor cursor = new GrammarCursor(grammar);
            StringBuilder text = new StringBuilder();
            while (!cursor.done() && text.length() < 120) {
                List<Character> taken = new ArrayList<>();
                for (char c : alphabet) {
                    if (cursor.copy().accept(c)) {
                        taken.add(c);
                    }
                }
                assertThat(taken).as("a character continues %s", text).isNotEmpty();
                // The closing quote grows likelier as the text grows, so that walks end.
                char next = taken.contains('"') && random.nextInt(40) < text.length() ? '"'
                        : taken.get(random.nextInt(taken.size()));
                assertThat(cursor.accept(next)).isTrue();
                text.append(next);
            }
            if (cursor.done()) {
                finished++;
                String value = text.substring(1, text.length() - 1);
                switch (format) {
                    case "date" -> LocalDate.parse(value);
                    case "time" -> OffsetTime.parse(value);
                    case "date-time" -> OffsetDateTime.parse(value);
                    case "uuid" -> assertThat(UUID.fromString(value).toString()).isEqualToIgnoringCase(value);
                    case "ipv4" -> assertThat(value.split("\\.")).hasSize(4).allSatisfy(octet -> assertThat(
                            String.valueOf(Integer.parseInt(octet))).isEqualTo(octet).satisfies(
                            kept -> assertThat(Integer.parseInt(kept)).isBetween(0, 255)));
                    default -> assertThat(value).matches("[^@]+@[^@.]+(\\.[^@.]+)+");
                }
            }
        }
        assertThat(finished).as("walks that finished").isGreaterThan(100);
    }

    @Test
    void aPatternBesideAFormatHoldsAlone() {
        OutputGrammar grammar = OutputGrammar.jsonSchema(
                "{\"type\": \"string\", \"format\": \"date\", \"pattern\": \"^[a-z]+$\"}");
        assertThat(takesWhole(grammar, "\"abc\"")).isTrue();
        assertThat(takesWhole(grammar, "\"2024-01-01\"")).isFalse();
    }

    private static boolean takesWhole(OutputGrammar grammar, String text) {
        GrammarCursor cursor = new GrammarCursor(grammar);
        return cursor.acceptAll(text) && cursor.mayEnd();
    }

    @Test
    void grammarsOfTheSameSchemaAreEqual() {
        assertThat(OutputGrammar.jsonSchema("{\"type\": \"integer\"}"))
                .isEqualTo(OutputGrammar.jsonSchema("{ \"type\" : \"integer\" }"))
                .isNotEqualTo(OutputGrammar.jsonSchema("{\"type\": \"number\"}"));
        // Made again, the same grammar: its states are equal, so allowed sets kept for them serve again.
        GrammarState first = OutputGrammar.jsonSchema(PERSON).start().feedAll("{\"name\": \"A");
        assertThat(OutputGrammar.jsonSchema(PERSON).start().feedAll("{\"name\": \"A")).isEqualTo(first);
        assertThat(OutputGrammar.regex("a+b")).isSameAs(OutputGrammar.regex("a+b"));
        assertThat(OutputGrammar.choice(List.of("a, b"))).isNotEqualTo(OutputGrammar.choice(List.of("a", "b")));
        GrammarCursor cursor = new GrammarCursor(OutputGrammar.choice(List.of("a", "b")));
        assertThat(cursor.acceptAll("a, b")).isFalse();
    }
}
