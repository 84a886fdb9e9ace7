package dev.coil.engine.load;

/** Element types Coil reads from checkpoints. Compute is always f32; these are storage types. */
public enum DType {
    F32(4),
    BF16(2),
    F16(2);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The supported spellings, for error messages: "F32, BF16 and F16". */
    public static final String SUPPORTED = "F32, BF16 and F16";

    /** The safetensors spelling ("F32", "BF16", "F16"), or null when Coil does not support it. */
    public static DType fromSafetensors(String name) {
        return switch (name) {
            case "F32" -> F32;
            case "BF16" -> BF16;
            case "F16" -> F16;
            default -> null;
        };
    }
}
