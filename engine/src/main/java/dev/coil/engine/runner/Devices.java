package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What {@code --devices} asks for: {@code auto}, {@code cpu}, {@code cpu:N} (N virtual devices:
 * threads with separate buffers, for context parallelism), {@code cuda} or {@code cuda:0},
 * {@code cuda:0,cuda:1} (several GPUs). {@code auto} is resolved by whoever opens the backend:
 * CUDA when a GPU and the kernels are present, else the CPU.
 *
 * @param kind    AUTO, CPU or CUDA
 * @param ordinals for CUDA: the device ordinals in order; for CPU: 0 .. N-1 (N virtual devices);
 *                empty for AUTO
 */
public record Devices(Kind kind, List<Integer> ordinals) {

    public enum Kind {
        AUTO, CPU, CUDA
    }

    /**
     * The spellings, for help and errors. The command line's help may break a line after a ':' or ','
     * inside a word; in this order no value ends up split in any command's help (the server's
     * CommandLineTest checks).
     */
    public static final String HELP = "auto, cpu, cuda, cuda:0, a list of GPUs such as cuda:0,cuda:1 or cpu:N"
            + " (N virtual CPU devices)";

    public Devices {
        ordinals = List.copyOf(ordinals);
        if (kind != Kind.AUTO && ordinals.isEmpty()) {
            throw new IllegalArgumentException("--devices " + kind + " needs at least one device");
        }
    }

    public static Devices auto() {
        return new Devices(Kind.AUTO, List.of());
    }

    public static Devices cpu(int count) {
        List<Integer> ordinals = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            ordinals.add(i);
        }
        return new Devices(Kind.CPU, ordinals);
    }

    public static Devices cuda(int ordinal) {
        return new Devices(Kind.CUDA, List.of(ordinal));
    }

    /** Parses the flag's value; the message of a bad one names the flag and the accepted forms. */
    public static Devices parse(String spec) {
        String text = spec == null ? "" : spec.trim().toLowerCase(Locale.ROOT);
        if (text.equals("auto")) {
            return auto();
        }
        if (text.equals("cpu")) {
            return cpu(1);
        }
        if (text.startsWith("cpu:")) {
            int count = number(text.substring(4), spec);
            if (count < 1 || count > 64) {
                throw new IllegalArgumentException("--devices cpu:N takes N from 1 to 64, got " + spec);
            }
            return cpu(count);
        }
        if (text.equals("cuda")) {
            return cuda(0);
        }
        if (text.startsWith("cuda")) {
            List<Integer> ordinals = new ArrayList<>();
            for (String part : text.split(",")) {
                String device = part.trim();
                if (!device.startsWith("cuda:")) {
                    throw invalid(spec);
                }
                int ordinal = number(device.substring(5), spec);
                if (ordinal < 0 || ordinals.contains(ordinal)) {
                    throw new IllegalArgumentException("--devices lists cuda:" + ordinal
                            + (ordinal < 0 ? ", which is not a device" : " twice") + " in " + spec);
                }
                ordinals.add(ordinal);
            }
            return new Devices(Kind.CUDA, ordinals);
        }
        throw invalid(spec);
    }

    public boolean isCpu() {
        return kind == Kind.CPU;
    }

    public boolean isCuda() {
        return kind == Kind.CUDA;
    }

    /** How many devices (virtual ones for the CPU); 0 for AUTO. */
    public int count() {
        return ordinals.size();
    }

    @Override
    public String toString() {
        return switch (kind) {
            case AUTO -> "auto";
            case CPU -> ordinals.size() == 1 ? "cpu" : "cpu:" + ordinals.size();
            case CUDA -> String.join(",", ordinals.stream().map(o -> "cuda:" + o).toList());
        };
    }

    private static int number(String digits, String spec) {
        try {
            return Integer.parseInt(digits.trim());
        } catch (NumberFormatException e) {
            throw invalid(spec);
        }
    }

    private static IllegalArgumentException invalid(String spec) {
        return new IllegalArgumentException("--devices must be " + HELP + "; got '" + spec + "'");
    }
}
