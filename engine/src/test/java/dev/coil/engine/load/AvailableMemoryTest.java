package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AvailableMemoryTest {

    @TempDir
    Path folder;

    private Path meminfo(long availableKb) throws IOException {
        return Files.writeString(folder.resolve("meminfo"), "MemTotal:       32000000 kB\nMemFree:          500000 kB\n"
                + "MemAvailable:   " + availableKb + " kB\nBuffers:           1000 kB\n");
    }

    private Path cgroup(String max, long current) throws IOException {
        Path cgroup = Files.createDirectories(folder.resolve("cgroup"));
        Files.writeString(cgroup.resolve("memory.max"), max + "\n");
        Files.writeString(cgroup.resolve("memory.current"), current + "\n");
        return cgroup;
    }

    @Test
    void theKernelsAvailableMemoryWithoutALimit() throws IOException {
        assertThat(AvailableMemory.bytes(meminfo(2_000_000), folder.resolve("none")))
                .isEqualTo(OptionalLong.of(2_000_000L * 1024));
        assertThat(AvailableMemory.bytes(meminfo(2_000_000), cgroup("max", 123)))
                .isEqualTo(OptionalLong.of(2_000_000L * 1024));
    }

    @Test
    void aContainersLimitWhenItLeavesLess() throws IOException {
        long limit = 1L << 30;
        assertThat(AvailableMemory.bytes(meminfo(8_000_000), cgroup(Long.toString(limit), 300L << 20)))
                .isEqualTo(OptionalLong.of(limit - (300L << 20)));
        assertThat(AvailableMemory.bytes(meminfo(100_000), cgroup(Long.toString(limit), 0)))
                .isEqualTo(OptionalLong.of(100_000L * 1024));
    }

    @Test
    void unknownWhereTheSystemDoesNotSay() {
        assertThat(AvailableMemory.bytes(folder.resolve("missing"), folder.resolve("none"))).isEmpty();
    }

    @Test
    void thisMachineSaysOnLinux() {
        if (System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT).contains("linux")) {
            assertThat(AvailableMemory.bytes()).isPresent();
            assertThat(AvailableMemory.bytes().getAsLong()).isPositive();
        }
    }
}
