// Kernels of context parallelism on GPUs: the pieces a sharded prefill adds to the one-device
// forward. Attention shards meet by the log-sum-exp merge of partial outputs; Mamba-2 shards are
// each scanned from a zero state, their states chained along the shards, and their outputs
// corrected with the state that really entered them (the recurrence is linear in its state).
#include "common.cuh"

// dt[t, h] = clamp(softplus(projected[t, column + h] + bias[h]), dt_min, dt_max): the prompt's dt,
// as Mamba2Mixer takes it (torch's softplus: linear above 20).
//   projected: (rows, ·) in rows of stride floats;  dt: (rows, heads)
extern "C" __global__ void mamba_prompt_dt(const float* __restrict__ projected, int stride, int column,
        const float* __restrict__ bias, float dt_min, float dt_max, int rows, int heads, float* __restrict__ dt) {
    const long index = (long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long) rows * heads) {
        return;
    }
    const int t = (int) (index / heads);
    const int h = (int) (index % heads);
    const float value = projected[(size_t) t * stride + column + h] + bias[h];
    const float softplus = value > 20.0f ? value : log1pf(expf(value));
    dt[index] = fminf(fmaxf(softplus, dt_min), dt_max);
}

// cum[t, h] = Σ_{s ≤ t} dt[s, h] · A[h]: the log of the decay from the shard's start through
// token t. One block per head walks the rows in tiles of blockDim.x (a power of two, ≤ 1024),
// scanning each tile and carrying its total.   dt, cum: (rows, heads)
extern "C" __global__ void ssd_decay_cumsum(const float* __restrict__ dt, const float* __restrict__ A, int rows,
        int heads, float* __restrict__ cum) {
    __shared__ float warp_totals[32];
    const int h = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const float a = A[h];
    float carry = 0.0f;
    for (int first = 0; first < rows; first += blockDim.x) {
        const int t = first + threadIdx.x;
        float value = t < rows ? dt[(size_t) t * heads + h] * a : 0.0f;
#pragma unroll
        for (int offset = 1; offset < 32; offset <<= 1) {
            const float before = __shfl_up_sync(0xffffffffu, value, offset);
            if (lane >= offset) {
                value += before;
            }
        }
        if (lane == 31) {
            warp_totals[warp] = value;
        }
        __syncthreads();
        if (warp == 0) {
            float total = lane < warps ? warp_totals[lane] : 0.0f;
#pragma unroll
            for (int offset = 1; offset < 32; offset <<= 1) {
                const float before = __shfl_up_sync(0xffffffffu, total, offset);
                if (lane >= offset) {
                    total += before;
                }
            }
            if (lane < warps) {
                warp_totals[lane] = total;
            }
        }
        __syncthreads();
        const float inclusive = carry + value + (warp > 0 ? warp_totals[warp - 1] : 0.0f);
        if (t < rows) {
            cum[(size_t) t * heads + h] = inclusive;
        }
        carry += warp_totals[warps - 1];
        __syncthreads();
    }
}

// The outputs that a state S entering a shard adds to those of its scan from zero:
// y[t, h, p] += exp(cum[t, h]) · Σ_n C[t, g, n] · S[h, p, n]. The sums are one matrix product per
// group (C_g · S_gᵀ, by cuBLAS); this kernel scales them by the decay and adds them. The decay only
// falls along the shard (dt ≥ 0, A < 0); where it has underflowed to zero nothing is added.
// y[t, (first_head + j / head_dim) · head_dim + j % head_dim] += exp(cum[t, first_head + j / head_dim]) ·
// product[t, j] for j < width: the entering state's outputs when C·Sᵀ was taken by a matrix product
// (product: (rows, width) dense, the heads first_head .. first_head + width / head_dim of one group).
//   y: (rows, inner);  cum: (rows, heads)
extern "C" __global__ void ssd_add_decayed(const float* __restrict__ product, int width, const float* __restrict__ cum,
        int rows, int heads, int head_dim, int first_head, int inner, float* __restrict__ y) {
    const long index = (long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long) rows * width) {
        return;
    }
    const int t = (int) (index / width);
    const int j = (int) (index % width);
    const int h = first_head + j / head_dim;
    const float factor = expf(cum[(size_t) t * heads + h]);
    if (factor != 0.0f) {
        y[(size_t) t * inner + (size_t) first_head * head_dim + j] += factor * product[index];
    }
}

// next[h, p, n] = exp(cum[last, h]) · entering[h, p, n] + own[h, p, n]: the state leaving a shard,
// from the state that entered it and the state its scan from zero left (own).
//   entering, own, next: (heads, per_head) with per_head = head_dim · state_size;  last_cum: (heads)
extern "C" __global__ void ssd_chain_step(const float* __restrict__ entering, const float* __restrict__ own,
        const float* __restrict__ last_cum, int heads, int per_head, float* __restrict__ next) {
    const long index = (long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long) heads * per_head) {
        return;
    }
    const int h = (int) (index / per_head);
    next[index] = fmaf(expf(last_cum[h]), entering[index], own[index]);
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
