// The MLP activations.
#include "common.cuh"

// out[t, i] = silu(gate[t, i]) · up[t, i]
//   gate: rows of gate_stride floats, up: rows of up_stride floats (Granite's stacked input_linear:
//   up = gate + width, both strides 2·width), out: (tokens, width);  out16: null, or the bf16
//   destination instead of out (the operand of the down projection).
// Grid-stride loop over tokens · width.
extern "C" __global__ void silu_multiply_f32(const float* __restrict__ gate, const float* __restrict__ up,
        float* __restrict__ out, __nv_bfloat16* __restrict__ out16, int tokens, int width, int gate_stride,
        int up_stride) {
    const long long n = (long long) tokens * width;
    for (long long index = (long long) blockIdx.x * blockDim.x + threadIdx.x; index < n;
            index += (long long) gridDim.x * blockDim.x) {
        const long long t = index / width;
        const int i = (int) (index - t * width);
        coil_store(out, out16, index, coil_silu_product(gate[t * gate_stride + i], up[t * up_stride + i]));
    }
}

// out[i] = max(x[i], 0)² (NemotronH's MLP). out may be x.
extern "C" __global__ void squared_relu_f32(const float* x, float* out, long long n) {
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        const float r = fmaxf(x[i], 0.0f);
        out[i] = __fmul_rn(r, r);
    }
}
