// Mamba-2 SSD scan, steps 2 and 3 of 4 (see ssd_scan.cuh): the state each chunk adds, then the
// state entering each chunk.
#include "ssd_scan.cuh"

// own[q, h, p, n] = Σ_l exp(cum_last − cum_l) · dt_l · x[l, h, p] · B[l, g, n]   (l over chunk q)
// decay[q, h] = exp(cum_last): what the chunk does to the state that enters it.
//   x: (rows, heads, head_dim) in rows of x_stride floats;  dt: (rows, heads) in rows of dt_stride;
//   A: (heads);  B: (rows, groups, state_size) in rows of bc_stride;  g = h / (heads / groups)
//   own: (chunks_total, heads, head_dim, state_size);  decay: (chunks_total, heads)
// A product over the chunk's tokens: own = (f ∘ x)ᵀ · B with f_l = exp(cum_last − cum_l) · dt_l.
// Grid: p_tiles · n_tiles · heads · chunks_total blocks (tiles of 64 p × 128 n, fastest first);
// 256 threads. Warp w computes p rows 32 (w / 4) .. + 32 and n columns 32 (w % 4) .. + 32.
// Shared memory: the chunk's sums and factors, and two stages of 32 tokens of x (32 × 64) and B (32 × 128).
#define SSD_STATE_X_STRIDE 72
#define SSD_STATE_B_STRIDE 136
#define SSD_STATE_STAGE (SSD_SLICE * SSD_STATE_X_STRIDE + SSD_SLICE * SSD_STATE_B_STRIDE)
#define SSD_STATE_SHARED_BYTES (sizeof(SsdSums) + SSD_MAX_CHUNK * 4 + 2 * SSD_STATE_STAGE * 4)

template <bool Split>
static __device__ __forceinline__ void ssd_chunk_state(const float* __restrict__ x, long long x_stride,
        const float* __restrict__ dt, long long dt_stride, const float* __restrict__ A,
        const float* __restrict__ B, long long bc_stride, float* __restrict__ own, float* __restrict__ decay,
        int tokens, int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
    extern __shared__ float4 ssd_state_shared4[];
    ssd_require_shared((unsigned) SSD_STATE_SHARED_BYTES);
    SsdSums& sums = *reinterpret_cast<SsdSums*>(ssd_state_shared4);
    float* factors = reinterpret_cast<float*>(ssd_state_shared4) + sizeof(SsdSums) / 4;
    float* stages = factors + SSD_MAX_CHUNK;

    const int p_tiles = (head_dim + 63) / 64;
    const int n_tiles = (state_size + 127) / 128;
    int block = blockIdx.x;
    const int p_tile = block % p_tiles;
    block /= p_tiles;
    const int n_tile = block % n_tiles;
    block /= n_tiles;
    const int head = block % heads;
    const int q = block / heads;
    const int group = head / (heads / groups);
    const SsdChunk span = ssd_chunk(q, tokens, chunk, chunks);

    const double total = ssd_chunk_sums(sums, dt + span.first_row * dt_stride, dt_stride, head, A[head], span.length);
    if (threadIdx.x == SSD_MAX_CHUNK - 1 && p_tile == 0 && n_tile == 0) {
        decay[(long long) q * heads + head] = (float) exp(total);
    }
    {
        const int l = threadIdx.x;
        factors[l] = expf(ssd_difference(sums, SSD_MAX_CHUNK - 1, l)) * sums.step[l];
    }
    // The factors are read after the first stage's barrier.

    const int p0 = 64 * p_tile;
    const int n0 = 128 * n_tile;
    const float* x_origin = x + span.first_row * x_stride + (long long) head * head_dim + p0;
    const float* b_origin = B + span.first_row * bc_stride + (long long) group * state_size + n0;
    const bool x_vector = ssd_aligned16(x) && (x_stride & 3) == 0 && (head_dim & 3) == 0;
    const bool b_vector = ssd_aligned16(B) && (bc_stride & 3) == 0 && (state_size & 3) == 0;
    const int slices = (span.length + SSD_SLICE - 1) / SSD_SLICE;

    auto load = [&](int slice, int stage) {
        float* x_tile = stages + stage * SSD_STATE_STAGE;
        float* b_tile = x_tile + SSD_SLICE * SSD_STATE_X_STRIDE;
        const long long l0 = (long long) slice * SSD_SLICE;
        const int rows = span.length - slice * SSD_SLICE;
        ssd_load_rows<64, SSD_STATE_X_STRIDE>(x_tile, x_origin + l0 * x_stride, x_stride, 0, SSD_SLICE, rows,
                head_dim - p0, x_vector, x);
        ssd_load_rows<128, SSD_STATE_B_STRIDE>(b_tile, b_origin + l0 * bc_stride, bc_stride, 0, SSD_SLICE, rows,
                state_size - n0, b_vector, B);
    };

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int m0 = 32 * (warp >> 2);
    const int c0 = 32 * (warp & 3);

    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[mt][nt][e] = 0.0f;
            }
        }
    }

    load(0, 0);
    ssd_commit();
    for (int slice = 0; slice < slices; slice++) {
        if (slice + 1 < slices) {
            load(slice + 1, (slice + 1) & 1);
            ssd_commit();
            ssd_wait<1>();
        } else {
            ssd_wait<0>();
        }
        __syncthreads();
        const float* x_tile = stages + (slice & 1) * SSD_STATE_STAGE;
        const float* b_tile = x_tile + SSD_SLICE * SSD_STATE_X_STRIDE;
        const float* slice_factors = factors + slice * SSD_SLICE;
#pragma unroll
        for (int kk = 0; kk < SSD_SLICE / 8; kk++) {
            const int k = kk * 8 + t;
            const float f0 = slice_factors[k];
            const float f1 = slice_factors[k + 4];
            // A = (f ∘ x)ᵀ: A[m = p][k = l] = x[l][p] · f_l.
            SsdOperand<Split, 4> a[2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const int m = m0 + 16 * mt + g;
                a[mt].set(0, x_tile[k * SSD_STATE_X_STRIDE + m] * f0);
                a[mt].set(1, x_tile[k * SSD_STATE_X_STRIDE + m + 8] * f0);
                a[mt].set(2, x_tile[(k + 4) * SSD_STATE_X_STRIDE + m] * f1);
                a[mt].set(3, x_tile[(k + 4) * SSD_STATE_X_STRIDE + m + 8] * f1);
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int n = c0 + 8 * nt + g;
                SsdOperand<Split, 2> b;
                b.set(0, b_tile[k * SSD_STATE_B_STRIDE + n]);
                b.set(1, b_tile[(k + 4) * SSD_STATE_B_STRIDE + n]);
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    ssd_mma<Split>(acc[mt][nt], a[mt], b);
                }
            }
        }
        __syncthreads();
    }

    float* out = own + ((long long) q * heads + head) * head_dim * state_size;
    const bool pairs = (state_size & 1) == 0;
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int p = p0 + m0 + 16 * mt + g + 8 * half;
            if (p >= head_dim) {
                continue;
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int n = n0 + c0 + 8 * nt + 2 * t;
                float* target = out + (long long) p * state_size + n;
                const float first = acc[mt][nt][2 * half];
                const float second = acc[mt][nt][2 * half + 1];
                if (pairs && n + 1 < state_size) {
                    *reinterpret_cast<float2*>(target) = make_float2(first, second);
                } else {
                    if (n < state_size) {
                        target[0] = first;
                    }
                    if (n + 1 < state_size) {
                        target[1] = second;
                    }
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) ssd_chunk_state_tf32(const float* x, long long x_stride,
        const float* dt, long long dt_stride, const float* A, const float* B, long long bc_stride, float* own,
        float* decay, int tokens, int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
    ssd_chunk_state<false>(x, x_stride, dt, dt_stride, A, B, bc_stride, own, decay, tokens, chunk, chunks, heads,
            head_dim, groups, state_size);
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) ssd_chunk_state_f32(const float* x, long long x_stride,
        const float* dt, long long dt_stride, const float* A, const float* B, long long bc_stride, float* own,
        float* decay, int tokens, int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
    ssd_chunk_state<true>(x, x_stride, dt, dt_stride, A, B, bc_stride, own, decay, tokens, chunk, chunks, heads,
            head_dim, groups, state_size);
}

// In place over `states` (the own contributions from ssd_chunk_state), per sequence b and head h:
//   entering[c] = running;  running = decay[c] · running + own[c],  starting from the sequence's
//   state slot, which receives the final running state.
//   states: (chunks_total, heads, head_dim · state_size);  decay: (chunks_total, heads)
//   pool: (slots, heads, head_dim · state_size);  slots: (sequences) or null for slot b = sequence b
// Grid: parts · heads · sequences blocks (parts fastest) of 256 threads, parts = ⌈head_state / width / 256⌉;
// a thread carries `width` consecutive floats (4, which needs head_state a multiple of 4 and 16-byte
// aligned buffers, or 1) through every chunk in order.
#define SSD_PASSING_BATCH 8

template <typename V>
static __device__ __forceinline__ V ssd_axpy(float scale, V value, V add);

template <>
__device__ __forceinline__ float ssd_axpy<float>(float scale, float value, float add) {
    return fmaf(scale, value, add);
}

template <>
__device__ __forceinline__ float4 ssd_axpy<float4>(float scale, float4 value, float4 add) {
    return make_float4(fmaf(scale, value.x, add.x), fmaf(scale, value.y, add.y), fmaf(scale, value.z, add.z),
            fmaf(scale, value.w, add.w));
}

template <typename V>
static __device__ __forceinline__ void ssd_pass(float* states, const float* decay, float* pool, const int* slots,
        int chunks, int heads, long long head_state, int part, int head, int sequence) {
    constexpr int WIDTH = sizeof(V) / 4;
    const long long e = ((long long) part * SSD_THREADS + threadIdx.x) * WIDTH;
    if (e >= head_state) {
        return;
    }
    const int slot = slots != nullptr ? slots[sequence] : sequence;
    V* carried = reinterpret_cast<V*>(pool + ((long long) slot * heads + head) * head_state + e);
    V running = *carried;
    const long long first = (long long) sequence * chunks;
    for (int c0 = 0; c0 < chunks; c0 += SSD_PASSING_BATCH) {
        V own[SSD_PASSING_BATCH];
        float factor[SSD_PASSING_BATCH];
#pragma unroll
        for (int k = 0; k < SSD_PASSING_BATCH; k++) {
            if (c0 + k < chunks) {
                const long long q = first + c0 + k;
                own[k] = *reinterpret_cast<const V*>(states + (q * heads + head) * head_state + e);
                factor[k] = decay[q * heads + head];
            }
        }
#pragma unroll
        for (int k = 0; k < SSD_PASSING_BATCH; k++) {
            if (c0 + k < chunks) {
                const long long q = first + c0 + k;
                *reinterpret_cast<V*>(states + (q * heads + head) * head_state + e) = running;
                running = ssd_axpy<V>(factor[k], running, own[k]);
            }
        }
    }
    *carried = running;
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS) ssd_state_passing(float* states,
        const float* __restrict__ decay, float* pool, const int* __restrict__ slots, int sequences, int chunks,
        int heads, int head_state, int width) {
    const int parts = (head_state / width + SSD_THREADS - 1) / SSD_THREADS;
    const int part = blockIdx.x % parts;
    const int head = (blockIdx.x / parts) % heads;
    const int sequence = blockIdx.x / parts / heads;
    if (sequence >= sequences) {
        return;
    }
    if (width == 4) {
        ssd_pass<float4>(states, decay, pool, slots, chunks, heads, head_state, part, head, sequence);
    } else {
        ssd_pass<float>(states, decay, pool, slots, chunks, heads, head_state, part, head, sequence);
    }
}
