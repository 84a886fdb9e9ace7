// The MLP activations.
#include "common.cuh"

// out[t, i] = silu(gate[t, i]) · up[t, i]
//   gate: rows of gate_stride floats, up: rows of up_stride floats (Granite's stacked input_linear:
//   up = gate + width, both strides 2·width), out: (tokens, width);  out16: null, or the bf16
//   destination instead of out (the operand of the down projection).
// Grid: (ceil(width / blockDim.x) or fewer, min(tokens, 65535)), strided over both: no index division
// an element (a grid-stride loop over tokens · width divided each 64-bit index by width, 27 µs for
// 2048 × 2048 on an H100, well below the bytes' time).
extern "C" __global__ void silu_multiply_f32(const float* __restrict__ gate, const float* __restrict__ up,
        float* __restrict__ out, __nv_bfloat16* __restrict__ out16, int tokens, int width, int gate_stride,
        int up_stride) {
    COIL_AFTER_PREVIOUS_KERNEL();
    for (int t = blockIdx.y; t < tokens; t += gridDim.y) {
        const float* gate_row = gate + (size_t) t * gate_stride;
        const float* up_row = up + (size_t) t * up_stride;
        const size_t row = (size_t) t * width;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x) {
            coil_store(out, out16, row + i, coil_silu_product(gate_row[i], up_row[i]));
        }
    }
}

// out[i] = max(x[i], 0)² (NemotronH's MLP). out may be x.
extern "C" __global__ void squared_relu_f32(const float* x, float* out, long long n) {
    COIL_AFTER_PREVIOUS_KERNEL();
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        out[i] = coil_squared_relu(x[i]);
    }
}
