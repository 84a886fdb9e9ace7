package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class DevicesTest {

    @Test
    void parsesEveryForm() {
        assertThat(Devices.parse("auto")).isEqualTo(Devices.auto());
        assertThat(Devices.parse("cpu")).isEqualTo(new Devices(Devices.Kind.CPU, List.of(0)));
        assertThat(Devices.parse("CPU:3").ordinals()).containsExactly(0, 1, 2);
        assertThat(Devices.parse("cuda")).isEqualTo(Devices.cuda(0));
        assertThat(Devices.parse("cuda:1")).isEqualTo(Devices.cuda(1));
        assertThat(Devices.parse("cuda:0, cuda:1").ordinals()).containsExactly(0, 1);
        assertThat(Devices.parse("cuda:0,cuda:1").count()).isEqualTo(2);
    }

    @Test
    void stepBudgetDefaultsFollowTheDevice() {
        assertThat(Backends.defaultMaxBatchedTokens(Devices.cpu(1))).isEqualTo(EngineOptions.DEFAULTS.maxBatchedTokens());
        assertThat(Backends.gpuMaxBatchedTokens(80L << 30)).isEqualTo(8192); // an H100
        assertThat(Backends.gpuMaxBatchedTokens(70L << 30)).isEqualTo(8192);
        assertThat(Backends.gpuMaxBatchedTokens((70L << 30) - 1)).isEqualTo(2048);
        assertThat(Backends.gpuMaxBatchedTokens(24L << 30)).isEqualTo(2048);
    }

    @Test
    void snapshotSpacingDefaultsFollowTheDevice() {
        assertThat(Backends.defaultSnapshotIntervalBlocks(Devices.cpu(1), 16))
                .isEqualTo(EngineOptions.DEFAULTS.snapshotIntervalBlocks());
        assertThat(Backends.defaultSnapshotIntervalBlocks(Devices.cpu(1), 64))
                .isEqualTo(EngineOptions.DEFAULTS.snapshotIntervalBlocks());
        assertThat(Backends.gpuSnapshotIntervalBlocks(16)).isEqualTo(64); // 1024 positions
        assertThat(Backends.gpuSnapshotIntervalBlocks(32)).isEqualTo(32);
        assertThat(Backends.gpuSnapshotIntervalBlocks(4096)).isEqualTo(1);
    }

    @Test
    void printsWhatItParsed() {
        for (String spec : List.of("auto", "cpu", "cpu:4", "cuda:0", "cuda:0,cuda:1")) {
            assertThat(Devices.parse(spec).toString()).isEqualTo(spec);
        }
    }

    @Test
    void rejectsBadSpellingsNamingTheFlag() {
        for (String spec : List.of("", "gpu", "cpu:0", "cpu:x", "cuda:a", "cuda:0,cpu", "cuda:0,cuda:0", "cpu:65")) {
            assertThatThrownBy(() -> Devices.parse(spec)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("--devices");
        }
    }
}
