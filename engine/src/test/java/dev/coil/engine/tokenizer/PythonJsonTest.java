package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Expected strings are what Python 3's json.dumps(..., ensure_ascii=False) prints. */
class PythonJsonTest {

    @Test
    void usesPythonSeparatorsAndKeepsNonAscii() {
        Map<String, Object> value = new LinkedHashMap<>();
        value.put("name", "Zürich \"quoted\" \\ \n\t\u0001");
        value.put("list", Arrays.asList(1, 2.5, true, null));
        value.put("empty", Map.of());
        assertThat(PythonJson.dumps(value, null, false))
                .isEqualTo("{\"name\": \"Zürich \\\"quoted\\\" \\\\ \\n\\t\\u0001\", "
                + "\"list\": [1, 2.5, true, null], \"empty\": {}}");
    }

    @Test
    void indentsLikePython() {
        Map<String, Object> value = new LinkedHashMap<>();
        value.put("b", List.of(1, List.of()));
        value.put("a", Map.of("x", "y"));
        assertThat(PythonJson.dumps(value, 2, false))
                .isEqualTo("{\n  \"b\": [\n    1,\n    []\n  ],\n  \"a\": {\n    \"x\": \"y\"\n  }\n}");
        assertThat(PythonJson.dumps(value, null, true)).isEqualTo("{\"a\": {\"x\": \"y\"}, \"b\": [1, []]}");
    }

    @Test
    void printsFloatsAsPythonRepr() {
        assertThat(PythonJson.pythonFloat(1.0)).isEqualTo("1.0");
        assertThat(PythonJson.pythonFloat(-0.0)).isEqualTo("-0.0");
        assertThat(PythonJson.pythonFloat(0.1)).isEqualTo("0.1");
        assertThat(PythonJson.pythonFloat(1e-4)).isEqualTo("0.0001");
        assertThat(PythonJson.pythonFloat(1e-5)).isEqualTo("1e-05");
        assertThat(PythonJson.pythonFloat(123456789012345.6)).isEqualTo("123456789012345.6");
        assertThat(PythonJson.pythonFloat(1e16)).isEqualTo("1e+16");
        assertThat(PythonJson.pythonFloat(-2.5e-300)).isEqualTo("-2.5e-300");
        assertThat(PythonJson.pythonFloat(Double.POSITIVE_INFINITY)).isEqualTo("Infinity");
    }
}
