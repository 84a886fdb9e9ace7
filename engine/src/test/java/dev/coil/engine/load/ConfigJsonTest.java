package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigJsonTest {

    @TempDir
    Path folder;

    private ObjectNode read(String json) throws IOException {
        return ConfigJson.read(Files.writeString(folder.resolve("config.json"), json));
    }

    @Test
    void bareInfinityTokensReadAsDoubles() throws IOException {
        ObjectNode config = read("""
                {"time_step_limit": [0.0, Infinity], "floor": -Infinity, "odd": NaN}
                """);
        assertThat(ConfigJson.getDoubles(config, "time_step_limit", null)).containsExactly(0.0, Double.POSITIVE_INFINITY);
        assertThat(ConfigJson.getDouble(config, "floor", 0)).isEqualTo(Double.NEGATIVE_INFINITY);
        assertThat(ConfigJson.getDouble(config, "odd", 0)).isNaN();
    }

    @Test
    void taggedFloatsReadAsDoublesAtAnyDepth() throws IOException {
        ObjectNode config = read("""
                {"time_step_limit": [0.0, {"__float__": "Infinity"}],
                 "limit": {"__float__": "-Infinity"},
                 "nested": {"deeper": [[{"__float__": "NaN"}]]}}
                """);
        assertThat(ConfigJson.getDoubles(config, "time_step_limit", null)).containsExactly(0.0, Double.POSITIVE_INFINITY);
        assertThat(ConfigJson.requireDouble(config, "limit", "config.json")).isEqualTo(Double.NEGATIVE_INFINITY);
        assertThat(config.at("/nested/deeper/0/0").doubleValue()).isNaN();
    }

    @Test
    void unknownTaggedFloatIsRejected() {
        assertThatThrownBy(() -> read("{\"x\": {\"__float__\": \"lots\"}}"))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("lots").hasMessageContaining("Infinity");
    }

    @Test
    void malformedJsonNamesFileAndLine() {
        assertThatThrownBy(() -> read("{\n  \"hidden_size\": 64,\n  \"layers\": ]\n}"))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json")
                .hasMessageContaining("line 3");
    }

    @Test
    void topLevelMustBeAnObject() {
        assertThatThrownBy(() -> read("[1]"))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("config.json").hasMessageContaining("object");
        assertThatThrownBy(() -> read(""))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("config.json").hasMessageContaining("empty");
    }

    @Test
    void gettersFallBackToDefaultsWhenAbsentOrNull() throws IOException {
        ObjectNode config = read("""
                {"hidden_size": 64, "width": 4096.0, "eps": 1e-5, "tie": true, "act": "silu", "bias": null}
                """);
        assertThat(ConfigJson.getInt(config, "hidden_size", 0)).isEqualTo(64);
        assertThat(ConfigJson.getInt(config, "width", 0)).isEqualTo(4096);
        assertThat(ConfigJson.getInt(config, "absent", 7)).isEqualTo(7);
        assertThat(ConfigJson.getDouble(config, "eps", 0)).isEqualTo(1e-5);
        assertThat(ConfigJson.getDouble(config, "hidden_size", 0)).isEqualTo(64.0);
        assertThat(ConfigJson.getBoolean(config, "tie", false)).isTrue();
        assertThat(ConfigJson.getBoolean(config, "bias", true)).isTrue();
        assertThat(ConfigJson.getString(config, "act", "gelu")).isEqualTo("silu");
        assertThat(ConfigJson.getObject(config, "rope_scaling")).isNull();
        assertThat(ConfigJson.has(config, "bias")).isFalse();
    }

    @Test
    void idListsAcceptOneIdOrMany() throws IOException {
        ObjectNode config = read("{\"one\": 2, \"many\": [2, 7], \"none\": null}");
        assertThat(ConfigJson.getInts(config, "one")).containsExactly(2);
        assertThat(ConfigJson.getInts(config, "many")).containsExactly(2, 7);
        assertThat(ConfigJson.getInts(config, "none")).isEmpty();
    }

    @Test
    void requiredKeysFailNamingFileAndKey() throws IOException {
        ObjectNode config = read("{\"num_heads\": \"eight\", \"ratio\": 1.5}");
        assertThatThrownBy(() -> ConfigJson.requireInt(config, "hidden_size", "config.json"))
                .isInstanceOf(CheckpointException.class)
                .hasMessage("config.json: key 'hidden_size' is missing.");
        assertThatThrownBy(() -> ConfigJson.requireInt(config, "num_heads", "config.json"))
                .isInstanceOf(CheckpointException.class)
                .hasMessage("config.json: key 'num_heads' holds \"eight\"; expected an integer.");
        assertThatThrownBy(() -> ConfigJson.getInt(config, "ratio", 1))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("'ratio'").hasMessageContaining("1.5");
    }
}
