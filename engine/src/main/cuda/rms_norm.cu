// RMSNorm and Mamba-2's gated RMSNorm over rows of f32 activations.
#include "common.cuh"

// out[t, i] = weight[i] · (x[t, i] / sqrt(mean_i(x[t, i]²) + eps))
//   x, out: (tokens, dim), out may be x;  weight: (dim)
// Grid: (tokens); block: COIL_ROW_THREADS threads striding over the row. Each thread rereads the
// elements it squared, so writing in place is safe.
extern "C" __global__ void rms_norm_f32(const float* x, const float* __restrict__ weight, float* out, int dim,
        float eps) {
    __shared__ float scratch[32];
    const size_t row = (size_t) blockIdx.x * dim;
    float squares = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = x[row + i];
        squares = fmaf(v, v, squares);
    }
    squares = coil_block_sum(squares, scratch);
    const float inverse_rms = 1.0f / sqrtf(squares / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        out[row + i] = weight[i] * (x[row + i] * inverse_rms);
    }
}

// Gate before norm (Mamba-2): g = y · silu(z); out = weight · g / sqrt(mean over the group of g² + eps).
//   y, z, out: (tokens, dim), out may be y;  weight: (dim);  groups of group_size contiguous channels
//   (group_size == dim: HF's MambaRMSNormGated over the whole row).
// Grid: (tokens, dim / group_size); block: COIL_ROW_THREADS threads striding over one group.
extern "C" __global__ void gated_rms_norm_f32(const float* y, const float* __restrict__ z,
        const float* __restrict__ weight, float* out, int dim, int group_size, float eps) {
    __shared__ float scratch[32];
    const int group_start = blockIdx.y * group_size;
    const size_t start = (size_t) blockIdx.x * dim + group_start;
    float squares = 0.0f;
    for (int i = threadIdx.x; i < group_size; i += blockDim.x) {
        const float gated = y[start + i] * coil_silu(z[start + i]);
        squares = fmaf(gated, gated, squares);
    }
    squares = coil_block_sum(squares, scratch);
    const float inverse_rms = 1.0f / sqrtf(squares / group_size + eps);
    for (int i = threadIdx.x; i < group_size; i += blockDim.x) {
        const float gated = y[start + i] * coil_silu(z[start + i]);
        out[start + i] = weight[group_start + i] * (gated * inverse_rms);
    }
}
