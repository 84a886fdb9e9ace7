// Mamba-2 SSD scan, steps 2 and 3 of 4 (see ssd_scan.cuh): the state each chunk adds, then the
// state entering each chunk.
#include "ssd_scan.cuh"

// own[q, h, p, n] = Σ_l exp(cum_last − cum_l) · dt_l · x[l, h, p] · B[l, g, n]   (l over chunk q)
// decay[q, h] = exp(cum_last): what the chunk does to the state that enters it.
//   x: (rows, heads, head_dim) in rows of x_stride floats;  dt: (rows, heads) in rows of dt_stride;
//   A: (heads);  B: (rows, groups, state_size) in rows of bc_stride;  g = h / (heads / groups)
//   own: (chunks_total, heads, head_dim, state_size);  decay: (chunks_total, heads)
// A product over the chunk's tokens: own = (f ∘ x)ᵀ · B with f_l = exp(cum_last − cum_l) · dt_l.
// Grid: p_tiles · n_tiles · sets · groups · chunks_total blocks (tiles of 64 p × 128 n, fastest first),
// sets = ⌈heads per group / HEADS⌉; 256 threads serve HEADS heads of one group, which share the B
// tile. Each head has 8 / HEADS warps; of those, warp w computes p rows 32 (w / (4 / HEADS)) .. + 32
// and n columns 32 · HEADS · (w % (4 / HEADS)) .. + 32 · HEADS.
// Shared memory: each head's sums and factors, then two stages of 32 tokens of B (32 × 128) and of
// each head's x (32 × 64).
#define SSD_STATE_X_STRIDE 72
#define SSD_STATE_B_STRIDE 136
#define SSD_STATE_X_TILE (SSD_SLICE * SSD_STATE_X_STRIDE)
#define SSD_STATE_STAGE(heads) (SSD_SLICE * SSD_STATE_B_STRIDE + (heads) * SSD_STATE_X_TILE)
#define SSD_STATE_SHARED_BYTES(heads) ((heads) * (sizeof(SsdSums) + SSD_MAX_CHUNK * 4) + 2 * SSD_STATE_STAGE(heads) * 4)

template <bool Split, int HEADS>
static __device__ __forceinline__ void ssd_chunk_state(const float* __restrict__ x, long long x_stride,
        const float* __restrict__ dt, long long dt_stride, const float* __restrict__ A,
        const float* __restrict__ B, long long bc_stride, float* __restrict__ own, float* __restrict__ decay,
        int tokens, const int* starts, int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
    constexpr int STAGE = SSD_STATE_STAGE(HEADS);
    constexpr int WARPS_PER_HEAD = 8 / HEADS;
    constexpr int COLUMN_WARPS = WARPS_PER_HEAD / 2;
    constexpr int N_TILES = 4 * HEADS;
    extern __shared__ float4 ssd_state_shared4[];
    ssd_require_shared((unsigned) SSD_STATE_SHARED_BYTES(HEADS));
    SsdSums* all_sums = reinterpret_cast<SsdSums*>(ssd_state_shared4);
    float* all_factors = reinterpret_cast<float*>(all_sums + HEADS);
    float* stages = all_factors + HEADS * SSD_MAX_CHUNK;

    const SsdStateBlock where = ssd_state_block(HEADS, tokens, starts, chunk, chunks, heads, head_dim, groups,
            state_size);
    const SsdHeads served = where.served;
    const SsdChunk span = where.span;
    const int group = where.group;
    const int q = where.q;
    ssd_state_factors<HEADS>(all_sums, all_factors, where, dt, dt_stride, A, decay, heads);
    // The factors are read after the first stage's barrier.

    const int p0 = 64 * where.p_tile;
    const int n0 = 128 * where.n_tile;
    const float* x_origin = x + span.first_row * x_stride + (long long) served.first * head_dim + p0;
    const float* b_origin = B + span.first_row * bc_stride + (long long) group * state_size + n0;
    const bool x_vector = coil_aligned16(x) && (x_stride & 3) == 0 && (head_dim & 3) == 0;
    const bool b_vector = coil_aligned16(B) && (bc_stride & 3) == 0 && (state_size & 3) == 0;
    const int slices = (span.length + SSD_SLICE - 1) / SSD_SLICE;

    auto load = [&](int slice, int stage) {
        float* b_tile = stages + stage * STAGE;
        const long long l0 = (long long) slice * SSD_SLICE;
        const int rows = span.length - slice * SSD_SLICE;
        ssd_load_rows<128, SSD_STATE_B_STRIDE>(b_tile, b_origin + l0 * bc_stride, bc_stride, 0, SSD_SLICE, rows,
                state_size - n0, b_vector, B);
#pragma unroll
        for (int k = 0; k < HEADS; k++) {
            // Heads past the group's last read zeros.
            const int rows_k = k < served.count ? rows : 0;
            float* x_tile = b_tile + SSD_SLICE * SSD_STATE_B_STRIDE + k * SSD_STATE_X_TILE;
            ssd_load_rows<64, SSD_STATE_X_STRIDE>(x_tile, x_origin + l0 * x_stride + (long long) k * head_dim,
                    x_stride, 0, SSD_SLICE, rows_k, head_dim - p0, x_vector, x);
        }
    };

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int mine = warp / WARPS_PER_HEAD;
    const int m0 = 32 * ((warp % WARPS_PER_HEAD) / COLUMN_WARPS);
    const int c0 = 32 * HEADS * (warp % COLUMN_WARPS);
    const float* factors = all_factors + mine * SSD_MAX_CHUNK;

    float acc[2][N_TILES][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int nt = 0; nt < N_TILES; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[mt][nt][e] = 0.0f;
            }
        }
    }

    load(0, 0);
    ssd_commit();
    for (int slice = 0; slice < slices; slice++) {
        ssd_wait<0>();
        __syncthreads();
        if (slice + 1 < slices) {
            load(slice + 1, (slice + 1) & 1);
        }
        ssd_commit();
        const float* b_tile = stages + (slice & 1) * STAGE;
        const float* x_tile = b_tile + SSD_SLICE * SSD_STATE_B_STRIDE + mine * SSD_STATE_X_TILE;
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
            for (int nt = 0; nt < N_TILES; nt++) {
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
    }

    // Launched beside the Gram kernel (programmatic launch: neither touches what the other reads or
    // writes, and the kernels before the Gram kernel are done), the grid ends only after that kernel
    // has: the kernels after this one read the Gram matrices.
    coil_grid_dependency_wait();
    if (mine >= served.count) {
        return;
    }
    float* out = own + ((long long) q * heads + served.first + mine) * head_dim * state_size;
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
            for (int nt = 0; nt < N_TILES; nt++) {
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

#define SSD_STATE_ENTRY(name, split, heads)                                                                          \
    extern "C" __global__ void __launch_bounds__(SSD_THREADS, 2) name(const float* x, long long x_stride,           \
            const float* dt, long long dt_stride, const float* A, const float* B, long long bc_stride, float* own,  \
            float* decay, int tokens, const int* starts, int chunk, int chunks, int heads_, int head_dim,           \
            int groups, int state_size) {                                                                            \
        ssd_chunk_state<split, heads>(x, x_stride, dt, dt_stride, A, B, bc_stride, own, decay, tokens, starts,      \
                chunk, chunks, heads_, head_dim, groups, state_size);                                                \
    }

SSD_STATE_ENTRY(ssd_chunk_state_tf32, false, 1)
SSD_STATE_ENTRY(ssd_chunk_state_f32, true, 1)
// Two heads of a group a block, sharing the B tile.
SSD_STATE_ENTRY(ssd_chunk_state_tf32_pair, false, 2)

// In place over `states` (the own contributions from ssd_chunk_state), per sequence b and head h:
//   entering[c] = running;  running = decay[c] · running + own[c],  starting from the sequence's
//   state slot, which receives the final running state.
//   states: (chunks_total, heads, head_dim · state_size);  decay: (chunks_total, heads)
//   pool: (slots, heads, head_dim · state_size);  slots: (sequences) or null for slot b = sequence b
// Grid: parts · heads · sequences blocks (parts fastest) of 256 threads,
// parts = ⌈head_state / width / (256 · SSD_PASSING_COLUMNS)⌉; a thread carries SSD_PASSING_COLUMNS
// columns of `width` consecutive floats (4, which needs head_state a multiple of 4 and 16-byte
// aligned buffers, or 1), 256 · width floats apart, through every chunk in order. Two columns of
// four chunks a batch keep eight loads of a thread in flight even when a sequence has only four
// chunks (one column of eight chunks had four there): on an H100, 16 sequences of four chunks went
// from 0.19 to 0.12 ms, one of 64 chunks from 0.104 to 0.096 (docs/performance.md).
#define SSD_PASSING_COLUMNS 2
#define SSD_PASSING_BATCH 4

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
    constexpr int COLUMNS = SSD_PASSING_COLUMNS;
    const int slot = slots != nullptr ? slots[sequence] : sequence;
    // Consecutive chunks of this (sequence, head) lie `step` V's apart.
    const long long first = (long long) sequence * chunks;
    const long long step = (long long) heads * head_state / WIDTH;
    V* carried[COLUMNS];
    V* own[COLUMNS];
    V running[COLUMNS];
    bool inside[COLUMNS];
#pragma unroll
    for (int j = 0; j < COLUMNS; j++) {
        const long long e = ((long long) (part * COLUMNS + j) * SSD_THREADS + threadIdx.x) * WIDTH;
        inside[j] = e < head_state;
        carried[j] = reinterpret_cast<V*>(pool + ((long long) slot * heads + head) * head_state + e);
        own[j] = reinterpret_cast<V*>(states + (first * heads + head) * head_state + e);
        if (inside[j]) {
            running[j] = *carried[j];
        }
    }
    const float* factor = decay + first * heads + head;
    for (int c0 = 0; c0 < chunks; c0 += SSD_PASSING_BATCH) {
        V values[COLUMNS][SSD_PASSING_BATCH];
        float factors[SSD_PASSING_BATCH];
#pragma unroll
        for (int k = 0; k < SSD_PASSING_BATCH; k++) {
            if (c0 + k < chunks) {
                factors[k] = factor[(long long) k * heads];
#pragma unroll
                for (int j = 0; j < COLUMNS; j++) {
                    if (inside[j]) {
                        values[j][k] = own[j][k * step];
                    }
                }
            }
        }
#pragma unroll
        for (int k = 0; k < SSD_PASSING_BATCH; k++) {
            if (c0 + k < chunks) {
#pragma unroll
                for (int j = 0; j < COLUMNS; j++) {
                    if (inside[j]) {
                        own[j][k * step] = running[j];
                        running[j] = ssd_axpy<V>(factors[k], running[j], values[j][k]);
                    }
                }
            }
        }
#pragma unroll
        for (int j = 0; j < COLUMNS; j++) {
            own[j] += SSD_PASSING_BATCH * step;
        }
        factor += (long long) SSD_PASSING_BATCH * heads;
    }
#pragma unroll
    for (int j = 0; j < COLUMNS; j++) {
        if (inside[j]) {
            *carried[j] = running[j];
        }
    }
}

extern "C" __global__ void __launch_bounds__(SSD_THREADS, 4) ssd_state_passing(float* states,
        const float* __restrict__ decay, float* pool, const int* __restrict__ slots, int sequences, int chunks,
        int heads, int head_state, int width) {
    const int parts = (head_state / width + SSD_THREADS * SSD_PASSING_COLUMNS - 1) / (SSD_THREADS * SSD_PASSING_COLUMNS);
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

// For a sequence scanned from zero whose entering state S is known only afterwards (a shard of a
// context-parallel prompt): chunk c's entering state gains (Π_{j<c} decay_j) · S, and the state after
// the sequence is final_from_zero + (Π_j decay_j) · S. The recurrence is linear in its state, so the
// outputs then taken from the entering states are those of a scan from S.
//   states: (chunks, heads, head_state) entering states, updated;  decay: (chunks, heads)
//   entering, final_from_zero, leaving: (heads, head_state);  one thread per state element.
extern "C" __global__ void ssd_enter_state(float* __restrict__ states, const float* __restrict__ decay,
        const float* __restrict__ entering, const float* final_from_zero, float* leaving, int chunks, int heads,
        int head_state) {
    const long long index = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (long long) heads * head_state) {
        return;
    }
    const int head = (int) (index / head_state);
    const long long element = index % head_state;
    float running = entering[index];
    for (int c = 0; c < chunks; c++) {
        float* state = states + ((long long) c * heads + head) * head_state + element;
        *state += running;
        running *= decay[(long long) c * heads + head];
    }
    leaving[index] = final_from_zero[index] + running;
}
