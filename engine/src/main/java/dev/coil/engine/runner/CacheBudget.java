package dev.coil.engine.runner;

import java.lang.management.ManagementFactory;
import java.util.Locale;

/** --cache-memory: a byte count with an optional K/M/G/T suffix, or a fraction in (0, 1) of free memory. */
public final class CacheBudget {

    private CacheBudget() {
    }

    /** Checks the spelling; the value itself is resolved by {@link #bytes(String)}. */
    static void parse(String spec) {
        bytes(spec, 1L << 30);
    }

    /** The budget in bytes, a fraction resolving against the machine's free physical memory. */
    public static long bytes(String spec) {
        return bytes(spec, freeMemoryBytes());
    }

    /** The budget in bytes, a fraction resolving against {@code freeBytes}. */
    public static long bytes(String spec, long freeBytes) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("--cache-memory must be bytes (e.g. 4G, 512M) or a fraction (e.g. 0.3)");
        }
        String text = spec.trim().toUpperCase(Locale.ROOT);
        try {
            if (text.contains(".") || text.equals("0") || text.equals("1")) {
                double fraction = Double.parseDouble(text);
                if (!(fraction > 0 && fraction <= 1)) {
                    throw new IllegalArgumentException("--cache-memory as a fraction must be in (0, 1], got " + spec);
                }
                return (long) (fraction * freeBytes);
            }
            long unit = switch (text.charAt(text.length() - 1)) {
                case 'K' -> 1L << 10;
                case 'M' -> 1L << 20;
                case 'G' -> 1L << 30;
                case 'T' -> 1L << 40;
                default -> 1;
            };
            String digits = unit == 1 ? text : text.substring(0, text.length() - 1);
            if (digits.endsWith("I")) {
                throw new NumberFormatException(spec);
            }
            long value = Long.parseLong(digits);
            if (value <= 0) {
                throw new IllegalArgumentException("--cache-memory must be positive, got " + spec);
            }
            return Math.multiplyExact(value, unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException(
                    "--cache-memory must be bytes (e.g. 4G, 512M) or a fraction (e.g. 0.3), got " + spec);
        }
    }

    /** The machine's free physical memory. */
    static long freeMemoryBytes() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return os.getFreeMemorySize();
        }
        return Runtime.getRuntime().maxMemory();
    }
}
