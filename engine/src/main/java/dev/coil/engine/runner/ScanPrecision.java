package dev.coil.engine.runner;

import dev.coil.engine.gpu.kernels.SsdScanKernel;
import java.util.Locale;

/**
 * How the GPU's Mamba-2 SSD scan (prefill) takes its matrix products on the tensor cores
 * ({@code --ssd-precision}). Sums, decays and the carried state are f32 either way; the CPU
 * always scans in f32.
 */
public enum ScanPrecision {

    /**
     * Each f32 operand split into two tf32 parts, each product taken as three tf32 products: about
     * float32's error (relative 2e-6 on the kernel's tests), the same logits as the CPU to within
     * the tests' 1e-4. The default.
     */
    F32(SsdScanKernel.Precision.F32),

    /**
     * One tf32 product each (operands truncated to 11 significant bits), as PyTorch's
     * {@code allow_tf32}: relative errors near 1e-3 in the scan and in the logits at a prompt's
     * end, prompt logprobs up to about 4e-2 apart over 300 positions of the test models; long
     * prompts prefilled 9-20% faster on an H100. Greedy tokens may then differ from the CPU's
     * where two logits are that close.
     */
    TF32(SsdScanKernel.Precision.TF32);

    private final SsdScanKernel.Precision kernelPrecision;

    ScanPrecision(SsdScanKernel.Precision kernelPrecision) {
        this.kernelPrecision = kernelPrecision;
    }

    /** The scan kernel's precision. */
    public SsdScanKernel.Precision kernelPrecision() {
        return kernelPrecision;
    }

    /** Parses "f32" or "tf32" (any case); the message of a bad value names both. */
    public static ScanPrecision parse(String name) {
        String text = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return switch (text) {
            case "f32" -> F32;
            case "tf32" -> TF32;
            default -> throw new IllegalArgumentException("--ssd-precision must be f32 or tf32; got '" + name
                    + "'");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
