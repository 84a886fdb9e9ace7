package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.load.DType;

/**
 * The normed activations a mixer's first products read: f32 [rows, hidden], or, where every one of
 * those products has bf16 weights, already rounded to bf16 by the norm (the conversion a product
 * would otherwise launch itself, once per product).
 */
record StepInput(DeviceBuffer values, DType dtype) {

    /** out = input · wᵀ for [rows, w.cols] input: straight into cuBLAS when prepared, else converted first. */
    void project(DeviceKernels k, int rows, DeviceMatrix w, DeviceBuffer out) {
        if (dtype == DType.F32) {
            k.matmul.matmul(k.stream, values, rows, w, out);
        } else {
            if (w.dtype() != dtype) {
                throw new IllegalStateException("a " + dtype + " operand for " + w.dtype() + " weights");
            }
            k.matmul.matmulPrepared(k.stream, values, rows, w, out);
        }
    }

    /** True when products with all of {@code consumers} can read a bf16 operand (all weights bf16). */
    static boolean bf16For(DeviceMatrix... consumers) {
        for (DeviceMatrix consumer : consumers) {
            if (consumer != null && consumer.dtype() != DType.BF16) {
                return false;
            }
        }
        return true;
    }
}
