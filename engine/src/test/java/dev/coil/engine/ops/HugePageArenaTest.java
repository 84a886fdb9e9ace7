package dev.coil.engine.ops;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

class HugePageArenaTest {

    private static final Path THP = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");

    /** Linux on x86-64 or arm64 with THP always or madvise: where huge pages must be asked for. */
    private static boolean offered() throws IOException {
        String arch = System.getProperty("os.arch");
        if (!System.getProperty("os.name").toLowerCase(Locale.ROOT).contains("linux") || !Files.isReadable(THP)
                || !(arch.equals("amd64") || arch.equals("aarch64"))) {
            return false;
        }
        String setting = Files.readString(THP);
        return setting.contains("[always]") || setting.contains("[madvise]");
    }

    @Test
    void availableWhereTheKernelOffersTransparentHugePages() throws IOException {
        assertThat(HugePageArena.available()).isEqualTo(offered());
    }

    /** A large segment: zeroed, writable end to end, on 2 MiB pages (the kernel's own account of its mapping). */
    @Test
    void largeSegmentsSitOnHugePages() throws IOException {
        long bytes = 5 * HugePageArena.HUGE_PAGE + 12345;
        try (HugePageArena arena = HugePageArena.ofShared()) {
            MemorySegment segment = arena.allocate(bytes, 64);
            assertThat(segment.byteSize()).isEqualTo(bytes);
            for (long offset = 0; offset < bytes; offset += 4096) {
                assertThat(segment.get(ValueLayout.JAVA_BYTE, offset)).isZero();
            }
            segment.fill((byte) 7);
            assertThat(segment.get(ValueLayout.JAVA_BYTE, bytes - 1)).isEqualTo((byte) 7);
            if (HugePageArena.available()) {
                assertThat(segment.address() % HugePageArena.HUGE_PAGE).isZero();
                assertThat(hugePageBytes(segment.address())).as("AnonHugePages of the mapping")
                        .isGreaterThanOrEqualTo(4 * HugePageArena.HUGE_PAGE);
            }
        }
    }

    @Test
    void closingFreesTheSegments() throws IOException {
        HugePageArena arena = HugePageArena.ofShared();
        MemorySegment segment = arena.allocate(3 * HugePageArena.HUGE_PAGE, 64);
        segment.fill((byte) 1);
        long address = segment.address();
        if (HugePageArena.available()) {
            assertThat(vmFlags(mappingOf(address))).as("the segment's mapping before close").contains("hg");
        }
        arena.close();
        assertThatThrownBy(() -> segment.get(ValueLayout.JAVA_BYTE, 0)).isInstanceOf(IllegalStateException.class);
        if (HugePageArena.available()) {
            // The freed range may be mapped again at once by another of the JVM's threads (a malloc arena,
            // a thread's stack): what must be gone is the segment's own mapping, the one marked for huge pages.
            List<String> after = mappingOf(address);
            assertThat(after.isEmpty() || !vmFlags(after).contains("hg")).as("the segment's mapping after close: %s",
                    after).isTrue();
        }
    }

    /** The VmFlags of a mapping's lines from /proc/self/smaps ("hg": marked MADV_HUGEPAGE). */
    private static List<String> vmFlags(List<String> mapping) {
        for (String line : mapping) {
            if (line.startsWith("VmFlags:")) {
                return List.of(line.substring("VmFlags:".length()).trim().split("\\s+"));
            }
        }
        throw new AssertionError("no VmFlags line in " + mapping);
    }

    @Test
    void smallSegmentsAndAutomaticArenasWork() {
        HugePageArena automatic = HugePageArena.ofAuto();
        MemorySegment large = automatic.allocate(HugePageArena.HUGE_PAGE, 4096);
        MemorySegment small = automatic.allocate(1000, 8);
        large.set(ValueLayout.JAVA_LONG, HugePageArena.HUGE_PAGE - 8, 42L);
        small.set(ValueLayout.JAVA_INT, 996, 7);
        assertThat(large.get(ValueLayout.JAVA_LONG, HugePageArena.HUGE_PAGE - 8)).isEqualTo(42L);
        assertThat(small.get(ValueLayout.JAVA_INT, 996)).isEqualTo(7);
        assertThat(small.address() % 8).isZero();
        assertThat(large.address() % 4096).isZero();
        assertThatThrownBy(automatic::close).isInstanceOf(UnsupportedOperationException.class);
    }

    /** The AnonHugePages bytes of the mapping that holds {@code address}, from /proc/self/smaps. */
    private static long hugePageBytes(long address) throws IOException {
        List<String> mapping = mappingOf(address);
        assertThat(mapping).as("a mapping holding the segment").isNotEmpty();
        for (String line : mapping) {
            if (line.startsWith("AnonHugePages:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new AssertionError("no AnonHugePages line in " + mapping);
    }

    /** The lines of /proc/self/smaps describing the mapping that holds {@code address}; empty if none does. */
    private static List<String> mappingOf(long address) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        for (int i = 0; i < lines.size(); i++) {
            String[] range = lines.get(i).split(" ", 2)[0].split("-");
            if (range.length == 2 && range[0].matches("[0-9a-f]+") && range[1].matches("[0-9a-f]+")) {
                long start = Long.parseUnsignedLong(range[0], 16);
                long end = Long.parseUnsignedLong(range[1], 16);
                if (Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, end) < 0) {
                    int last = i + 1;
                    while (last < lines.size() && !lines.get(last).matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                        last++;
                    }
                    return lines.subList(i, last);
                }
            }
        }
        return List.of();
    }
}
