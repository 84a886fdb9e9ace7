// The residual stream update of every block.
#include "common.cuh"

// h[i] = h[i] + update[i] · multiplier over n elements, rounded as Java rounds h[i] += update[i] * m
// (no fma), so the GPU residual stream equals the CPU one bit for bit.
// Grid-stride loop over n.
extern "C" __global__ void residual_add_f32(float* __restrict__ h, const float* __restrict__ update,
        float multiplier, long long n) {
    COIL_AFTER_PREVIOUS_KERNEL();
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < n;
            i += (long long) gridDim.x * blockDim.x) {
        h[i] = __fadd_rn(h[i], __fmul_rn(update[i], multiplier));
    }
}
