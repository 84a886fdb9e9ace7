// f32 activations to the 16-bit type of a weight matrix, before a cuBLAS product.
#include "common.cuh"

// out[i] = bf16(x[i]), round to nearest even (as torch and Matrix.floatToBf16 do).
extern "C" __global__ void f32_to_bf16(const float* __restrict__ x, __nv_bfloat16* __restrict__ out, long long n) {
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        out[i] = __float2bfloat16_rn(x[i]);
    }
}

// out[i] = f16(x[i]), round to nearest even.
extern "C" __global__ void f32_to_f16(const float* __restrict__ x, __half* __restrict__ out, long long n) {
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        out[i] = __float2half_rn(x[i]);
    }
}
