// Kernels of context parallelism on GPUs: the pieces a sharded prefill adds to the one-device
// forward. Attention shards meet by the log-sum-exp merge of partial outputs; Mamba-2 shards pass
// their states along through ssd_enter_state (ssd_scan_states.cu).
#include "common.cuh"

// dt[t, h] = softplus(projected[t, column + h] + bias[h]), clamped to [dt_min, dt_max] for the
// first `clamped` rows (prompt tokens; rows after them are generated tokens being recomputed): a
// prompt chunk's dt, as Mamba2Mixer takes it. The softplus is torch's (linear above 20), computed
// in double and rounded to float as Mamba2Mixer.softplus does, so prefill on the device starts from
// the CPU's dt.
//   projected: (rows, ·) in rows of stride floats;  dt: (rows, heads)
static __device__ __forceinline__ float coil_prompt_dt(float value, float dt_min, float dt_max, bool clamp) {
    const float softplus = value > 20.0f ? value : (float) log1p(exp((double) value));
    return clamp ? fminf(fmaxf(softplus, dt_min), dt_max) : softplus;
}

extern "C" __global__ void mamba_prompt_dt(const float* __restrict__ projected, int stride, int column,
        const float* __restrict__ bias, float dt_min, float dt_max, int rows, int heads, int clamped,
        float* __restrict__ dt) {
    const long index = (long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long) rows * heads) {
        return;
    }
    const int t = (int) (index / heads);
    const int h = (int) (index % heads);
    dt[index] = coil_prompt_dt(projected[(size_t) t * stride + column + h] + bias[h], dt_min, dt_max, t < clamped);
}

// The same over the prompt chunks of several sequences packed one after another: chunk s holds rows
// starts[s] .. starts[s + 1] - 1, of which the first clamped[s] are clamped; row_chunk[r] is the
// chunk of row r.
extern "C" __global__ void mamba_prompt_dt_varlen(const float* __restrict__ projected, int stride, int column,
        const float* __restrict__ bias, float dt_min, float dt_max, int rows, int heads,
        const int* __restrict__ starts, const int* __restrict__ clamped, const int* __restrict__ row_chunk,
        float* __restrict__ dt) {
    const long index = (long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long) rows * heads) {
        return;
    }
    const int r = (int) (index / heads);
    const int h = (int) (index % heads);
    const int s = row_chunk[r];
    dt[index] = coil_prompt_dt(projected[(size_t) r * stride + column + h] + bias[h], dt_min, dt_max,
            r - starts[s] < clamped[s]);
}

// Merges a partial attention result into an accumulated one, row by row (one warp a row):
// each is normalized over its own keys, with lse = log2 Σ 2^(score · log2 e) over them;
//   lse' = log2(2^lse + 2^part_lse),  out' = out · 2^(lse − lse') + part · 2^(part_lse − lse').
// A row with no keys has lse = −inf and contributes nothing.
//   out, part: (rows, dim) f32;  lse, part_lse: (rows)
extern "C" __global__ void attention_merge(float* __restrict__ out, float* __restrict__ lse,
        const float* __restrict__ part, const float* __restrict__ part_lse, int rows, int dim) {
    const long row = (long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) {
        return;
    }
    const int lane = threadIdx.x & 31;
    const float mine = lse[row];
    const float theirs = part_lse[row];
    const float top = fmaxf(mine, theirs);
    if (top == -INFINITY) {
        return;
    }
    const float keep = exp2f(mine - top);
    const float take = exp2f(theirs - top);
    const float inverse = 1.0f / (keep + take);
    float* target = out + row * dim;
    const float* source = part + row * dim;
    for (int i = lane; i < dim; i += 32) {
        target[i] = (target[i] * keep + source[i] * take) * inverse;
    }
    __syncwarp();
    if (lane == 0) {
        lse[row] = top + log2f(keep + take);
    }
}
