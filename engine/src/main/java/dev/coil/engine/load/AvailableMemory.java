package dev.coil.engine.load;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

/**
 * How much memory this process can still fill without being killed: the kernel's MemAvailable
 * (free memory plus the page cache it can drop), and within a container the room left under its
 * cgroup's limit, whichever is smaller. Weights copied into memory ({@link WeightStorage#MEMORY})
 * must fit in it; mapped ones need not, since the kernel can drop and re-read their pages.
 */
public final class AvailableMemory {

    private static final Path MEMINFO = Path.of("/proc/meminfo");
    private static final Path CGROUP = Path.of("/sys/fs/cgroup");

    private AvailableMemory() {
    }

    /** The bytes this process may still fill, or empty where the system does not say (not Linux). */
    public static OptionalLong bytes() {
        return bytes(MEMINFO, CGROUP);
    }

    static OptionalLong bytes(Path meminfo, Path cgroup) {
        OptionalLong available = memAvailable(meminfo);
        OptionalLong room = cgroupRoom(cgroup);
        if (available.isEmpty()) {
            return room;
        }
        return room.isEmpty() ? available : OptionalLong.of(Math.min(available.getAsLong(), room.getAsLong()));
    }

    /** /proc/meminfo's "MemAvailable: N kB". */
    private static OptionalLong memAvailable(Path meminfo) {
        try {
            for (String line : Files.readAllLines(meminfo)) {
                if (line.startsWith("MemAvailable:")) {
                    String[] parts = line.trim().split("\\s+");
                    return OptionalLong.of(Long.parseLong(parts[1]) * 1024);
                }
            }
        } catch (IOException | RuntimeException e) {
            // unreadable or not Linux: unknown
        }
        return OptionalLong.empty();
    }

    /** cgroup v2's memory.max minus memory.current; empty without a limit ("max") or a cgroup v2. */
    private static OptionalLong cgroupRoom(Path cgroup) {
        try {
            Path max = cgroup.resolve("memory.max");
            Path current = cgroup.resolve("memory.current");
            if (!Files.isReadable(max) || !Files.isReadable(current)) {
                return OptionalLong.empty();
            }
            List<String> limit = Files.readAllLines(max);
            if (limit.isEmpty() || limit.get(0).trim().equals("max")) {
                return OptionalLong.empty();
            }
            long used = Long.parseLong(Files.readAllLines(current).get(0).trim());
            return OptionalLong.of(Math.max(0, Long.parseLong(limit.get(0).trim()) - used));
        } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
        }
    }
}
