package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class JinjaSourceAdapterTest {

    @Test
    void dropsOneTrailingNewlineOnly() {
        assertThat(JinjaSourceAdapter.adapt("a\n\n")).isEqualTo("a\n");
        assertThat(JinjaSourceAdapter.adapt("a")).isEqualTo("a");
    }

    @Test
    void turnsReversedSlicesIntoTheReverseFilter() {
        assertThat(JinjaSourceAdapter.adapt("{% for m in messages[::-1] %}"))
                .isEqualTo("{% for m in messages|reverse %}");
        assertThat(JinjaSourceAdapter.adapt("text [::-1] stays")).isEqualTo("text [::-1] stays");
    }

    @Test
    void parenthesisesKeywordArgumentValues() {
        assertThat(JinjaSourceAdapter.adapt("{%- set ns = namespace(a=true, last=messages|length - 1) %}"))
                .isEqualTo("{%- set ns = namespace(a=(true), last=(messages|length - 1)) %}");
        assertThat(JinjaSourceAdapter.adapt("{{ x | tojson(indent=4) }}")).isEqualTo("{{ x | tojson(indent=(4)) }}");
        assertThat(JinjaSourceAdapter.adapt("{{ f(g(a=1), b=[1, 2]) }}")).isEqualTo("{{ f(g(a=(1)), b=([1, 2])) }}");
    }

    @Test
    void leavesComparisonsStringsTextAndMacroDefinitionsAlone() {
        String[] unchanged = {
            "{{ f(a == b, c != d, e <= 1) }}",
            "{{ f('x=1, y=2') }}",
            "plain text f(a=1) outside tags",
            "{# f(a=1) #}",
            "{% macro m(x, y=1) %}{{ x }}{% endmacro %}",
            "{%- set x = 1 %}",
        };
        for (String source : unchanged) {
            assertThat(JinjaSourceAdapter.adapt(source)).isEqualTo(source);
        }
    }
}
