// RMSNorm and Mamba-2's gated RMSNorm over rows of f32 activations.
#include "common.cuh"

// Values of a row a thread keeps in registers between the sum of squares and the scaling: rows up
// to 16 · 256 wide are read once, their loads in flight together. (A loop that read and summed one
// value at a time waited on memory for each: in a decode step of a model 2688 wide the residual
// norm's launch took 9.3-12.4 µs that way, 6.5-9.3 this way, on an H200.)
#define COIL_NORM_CACHED 16

// The weights of a thread's CACHED cached values of a row of size values (a group's, from first on),
// weights[j] = weight[first + threadIdx.x + j · blockDim.x]: no earlier kernel writes them, so the
// kernels load them before their programmatic wait, and the scaling after the block sum waits on no
// load (a decode step's one-block norm of a 2688-wide row spent about 7 µs a launch on an H200, the
// weights' trip to memory after the sum among them).
template <int CACHED>
static __device__ __forceinline__ void coil_norm_weights(const float* __restrict__ weight, int first, int size,
        float (&weights)[CACHED]) {
#pragma unroll
    for (int j = 0; j < CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        weights[j] = i < size ? weight[first + i] : 0.0f;
    }
}

// RMSNorm of one row (dim values): x = h (RESIDUAL false), or x = h + update · multiplier stored back
// into h (RESIDUAL true); out = weight · x / sqrt(mean(x²) + eps), stored by coil_store. Each thread
// sums the squares of its values i = threadIdx.x + j · blockDim.x in order and the block adds them by
// coil_block_sum, as a loop over the row would. Every thread of the block calls it.
template <bool RESIDUAL>
static __device__ __forceinline__ void coil_rms_norm_row(float* h, const float* __restrict__ update,
        float multiplier, const float* __restrict__ weight, const float (&weights)[COIL_NORM_CACHED], int dim,
        float eps, float* out, __nv_bfloat16* out16, float* scratch) {
    float cached[COIL_NORM_CACHED];
    float squares = 0.0f;
#pragma unroll
    for (int j = 0; j < COIL_NORM_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < dim) {
            cached[j] = RESIDUAL ? __fadd_rn(h[i], __fmul_rn(update[i], multiplier)) : h[i];
        }
    }
#pragma unroll
    for (int j = 0; j < COIL_NORM_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < dim) {
            if (RESIDUAL) {
                h[i] = cached[j];
            }
            squares = fmaf(cached[j], cached[j], squares);
        }
    }
    for (int i = threadIdx.x + COIL_NORM_CACHED * blockDim.x; i < dim; i += blockDim.x) {
        const float v = RESIDUAL ? __fadd_rn(h[i], __fmul_rn(update[i], multiplier)) : h[i];
        if (RESIDUAL) {
            h[i] = v;
        }
        squares = fmaf(v, v, squares);
    }
    squares = coil_block_sum(squares, scratch);
    const float inverse_rms = 1.0f / sqrtf(squares / dim + eps);
#pragma unroll
    for (int j = 0; j < COIL_NORM_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < dim) {
            coil_store(out, out16, i, weights[j] * (cached[j] * inverse_rms));
        }
    }
    for (int i = threadIdx.x + COIL_NORM_CACHED * blockDim.x; i < dim; i += blockDim.x) {
        coil_store(out, out16, i, weight[i] * (h[i] * inverse_rms));
    }
}

// out[t, i] = weight[i] · (x[t, i] / sqrt(mean_i(x[t, i]²) + eps))
//   x, out: (tokens, dim), out may be x;  weight: (dim)
//   out16: null, or where the result goes instead, rounded to bf16 (the operand of the bf16 product
//   that reads it: the rounding the product's own conversion would do, one launch fewer)
// Grid: (tokens); block: COIL_ROW_THREADS threads striding over the row. Each thread rereads the
// elements it squared, so writing in place is safe.
extern "C" __global__ void rms_norm_f32(const float* x, const float* __restrict__ weight, float* out,
        __nv_bfloat16* out16, int dim, float eps) {
    float weights[COIL_NORM_CACHED];
    coil_norm_weights(weight, 0, dim, weights);
    COIL_AFTER_PREVIOUS_KERNEL();
    __shared__ float scratch[32];
    const size_t row = (size_t) blockIdx.x * dim;
    coil_rms_norm_row<false>(const_cast<float*>(x) + row, nullptr, 0.0f, weight, weights, dim, eps,
            out == nullptr ? nullptr : out + row, out16 == nullptr ? nullptr : out16 + row, scratch);
}

// Gate before norm (Mamba-2): g = y · silu(z); out = weight · g / sqrt(mean over the group of g² + eps).
//   y, out: (tokens, dim), out may be y;  z: rows of z_stride floats (z within in_proj's output);
//   weight: (dim);  groups of group_size contiguous channels (group_size == dim: HF's
//   MambaRMSNormGated over the whole row);  out16: null, or the bf16 destination instead of out.
// Grid: (tokens, dim / group_size); block: COIL_ROW_THREADS threads striding over one group.
// A thread's first COIL_GATED_CACHED gated values stay in registers between the sum of squares and
// the scaling (the same values in the same order as computing them again; groups up to 8 · 256 wide
// read y and z once).
#define COIL_GATED_CACHED 8
extern "C" __global__ void gated_rms_norm_f32(const float* y, const float* __restrict__ z, int z_stride,
        const float* __restrict__ weight, float* out, __nv_bfloat16* out16, int dim, int group_size, float eps) {
    const int group_start = blockIdx.y * group_size;
    float weights[COIL_GATED_CACHED];
    coil_norm_weights(weight, group_start, group_size, weights);
    COIL_AFTER_PREVIOUS_KERNEL();
    __shared__ float scratch[32];
    const size_t start = (size_t) blockIdx.x * dim + group_start;
    const float* gate = z + (size_t) blockIdx.x * z_stride + group_start;
    float cached[COIL_GATED_CACHED];
    float squares = 0.0f;
#pragma unroll
    for (int j = 0; j < COIL_GATED_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < group_size) {
            cached[j] = coil_gated(y[start + i], gate[i]);
            squares = fmaf(cached[j], cached[j], squares);
        }
    }
    for (int i = threadIdx.x + COIL_GATED_CACHED * blockDim.x; i < group_size; i += blockDim.x) {
        const float gated = coil_gated(y[start + i], gate[i]);
        squares = fmaf(gated, gated, squares);
    }
    squares = coil_block_sum(squares, scratch);
    const float inverse_rms = 1.0f / sqrtf(squares / group_size + eps);
#pragma unroll
    for (int j = 0; j < COIL_GATED_CACHED; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < group_size) {
            coil_store(out, out16, start + i, weights[j] * (cached[j] * inverse_rms));
        }
    }
    for (int i = threadIdx.x + COIL_GATED_CACHED * blockDim.x; i < group_size; i += blockDim.x) {
        const float gated = coil_gated(y[start + i], gate[i]);
        coil_store(out, out16, start + i, weight[group_start + i] * (gated * inverse_rms));
    }
}

// One block's residual update fused with the next block's RMSNorm, as residual_add_f32 then
// rms_norm_f32 give them (the same rounding and the same order of sums), in one launch:
//   h[t, i] = h[t, i] + update[t, i] · multiplier;  out[t, i] = weight[i] · h[t, i] / rms(h[t, :])
//   h, update: (tokens, dim);  out or out16 (bf16 instead): (tokens, dim), not overlapping h.
// Grid: (tokens); block: COIL_ROW_THREADS.
extern "C" __global__ void residual_rms_norm_f32(float* h, const float* __restrict__ update, float multiplier,
        const float* __restrict__ weight, float* out, __nv_bfloat16* out16, int dim, float eps) {
    float weights[COIL_NORM_CACHED];
    coil_norm_weights(weight, 0, dim, weights);
    COIL_AFTER_PREVIOUS_KERNEL();
    __shared__ float scratch[32];
    const size_t row = (size_t) blockIdx.x * dim;
    coil_rms_norm_row<true>(h + row, update + row, multiplier, weight, weights, dim, eps,
            out == nullptr ? nullptr : out + row,
            out16 == nullptr ? nullptr : out16 + row, scratch);
}
