package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Expected values are what Python 3 returns for the same calls. */
class PythonStringMethodsTest {

    @Test
    void splitsAsPython() {
        assertThat(PythonStringMethods.split("a,b,,c", ",", -1)).containsExactly("a", "b", "", "c");
        assertThat(PythonStringMethods.split("  a  b c ", null, -1)).containsExactly("a", "b", "c");
        assertThat(PythonStringMethods.split("  a  b c ", null, 1)).containsExactly("a", "b c ");
        assertThat(PythonStringMethods.split("a,b,c", ",", 1)).containsExactly("a", "b,c");
        assertThat(PythonStringMethods.rsplit("a,b,c", ",", 1)).containsExactly("a,b", "c");
        assertThat(PythonStringMethods.split("a.b", ".", -1)).as("a literal separator, not a regex")
                .containsExactly("a", "b");
    }

    @Test
    void stripsAsPython() {
        assertThat(PythonStringMethods.strip("xxhixx", "x", true, true)).isEqualTo("hi");
        assertThat(PythonStringMethods.strip("\u00a0 hi \t", null, true, true)).isEqualTo("hi");
        assertThat(PythonStringMethods.strip("  hi  ", null, true, false)).isEqualTo("hi  ");
        assertThat(PythonStringMethods.strip("  hi  ", null, false, true)).isEqualTo("  hi");
    }

    @Test
    void otherMethodsThroughATemplate() {
        ChatTemplate template = ChatTemplate.of("{{ t.splitlines() | join('|') }};{{ ''.splitlines() | length }};"
                + "{{ 'abab'.replace('ab', 'X', 1) }};{{ 'abc'.replace('', '-', 2) }};{{ 'hello world'.title() }};"
                + "{{ 'hELLO'.capitalize() }};{{ 'aaa'.count('aa') }};{{ 'abc'.find('z') }};"
                + "{{ 'abc'.startswith(('x', 'a')) }};{{ 'abc'.upper() }}", null, null);
        String rendered = template.render(List.of(ChatMessage.user("")), false, Map.of("t", "a\nb\r\nc\n"));
        assertThat(rendered).isEqualTo("a|b|c;0;Xab;-a-bc;Hello World;Hello;1;-1;True;ABC");
    }
}
