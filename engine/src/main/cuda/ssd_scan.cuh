// Shared pieces of the Mamba-2 SSD chunked scan for prefill (ssd_scan_*.cu): chunk geometry, the
// chunk's cumulative decays, tensor-core products on f32 data, and asynchronous tile copies.
//
// The scan runs as four kernels over the chunks of one or more equal-length sequences:
//   ssd_chunk_gram      CB[i, j] = C_i · B_j inside each chunk (per group)
//   ssd_chunk_state     the state each chunk adds on its own (zero state entering)
//   ssd_state_passing   the state entering each chunk, sequentially over chunks; the final state
//   ssd_chunk_output    y from the entering state and the chunk's own tokens, plus D · x
// Rows of x, dt, B and C are tokens: row = sequence · tokens + token, or starts[sequence] + token
// for sequences of different lengths packed one after another. A chunk is `chunk` tokens (the last
// one of a sequence may be shorter); chunks are numbered across sequences, q = sequence · chunks + c.
#ifndef COIL_SSD_SCAN_CUH
#define COIL_SSD_SCAN_CUH

#include <stdint.h>
#include "common.cuh"

// Every SSD kernel runs 256 threads (8 warps); a chunk holds at most 256 tokens, one per thread
// when the cumulative decays are summed.
#define SSD_THREADS 256
#define SSD_MAX_CHUNK 256
// Tokens (or state columns) per pipeline stage.
#define SSD_SLICE 32

// One chunk of one sequence: its first row and its length.
struct SsdChunk {
    long long first_row;
    int length;
};

// Chunk q of sequences of `tokens` tokens each (starts null), or of sequences packed one after
// another, sequence b's rows starting at starts[b] and ending before starts[b + 1], `tokens` the
// longest: a shorter sequence's chunks past its end are empty (length 0). An empty chunk adds
// nothing to the state and passes it on unchanged (decay exp(0) = 1), and writes no output.
static __device__ __forceinline__ SsdChunk ssd_chunk(int q, int tokens, const int* starts, int chunk, int chunks) {
    const int sequence = q / chunks;
    const int c = q - sequence * chunks;
    SsdChunk result;
    if (starts == nullptr) {
        result.first_row = (long long) sequence * tokens + (long long) c * chunk;
        result.length = min(chunk, tokens - c * chunk);
    } else {
        const int first = starts[sequence];
        result.first_row = (long long) first + (long long) c * chunk;
        result.length = max(0, min(chunk, starts[sequence + 1] - first - c * chunk));
    }
    return result;
}

// Dynamic shared memory below `bytes` means the launcher and the kernel disagree: stop rather than
// write past the block's allocation.
static __device__ __forceinline__ void ssd_require_shared(unsigned bytes) {
    unsigned size;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(size));
    if (size < bytes) {
        __trap();
    }
}

// ---------------------------------------------------------------------------------------------
// Cumulative decays of one chunk and one head. With a_l = dt_l · A (summed in double),
//   cum[l] = a_0 + … + a_l, kept as cum[l] · log2(e) in high + low floats, so that differences keep
//   their digits and exp(cum_i − cum_j) = 2^(ssd_difference(i, j)) takes one ex2 (exp2f, or
//   coil_exp2_approx in the tf32 warpgroup kernel, whose products carry 11-bit operands anyway),
//   without the product by log2(e) that expf makes of every argument; tokens at or past the chunk's
//   length count as dt = 0, so cum stays at the last value.
// exp(cum_i − cum_j) ≤ 1 for j ≤ i (A < 0, dt ≥ 0): no product of such factors overflows.
struct SsdSums {
    double warp_totals[SSD_THREADS / 32];
    float high[SSD_MAX_CHUNK];
    float low[SSD_MAX_CHUNK];
    float step[SSD_MAX_CHUNK];
};

// dt of token l of the chunk for one head (0 at or past the chunk's length). Read on its own so that a
// kernel can issue this load together with its first tile copies, before the sums' barriers.
//   dt: the chunk's first row of dt, rows dt_stride floats apart.
static __device__ __forceinline__ float ssd_chunk_step(int l, const float* dt, long long dt_stride, int head,
        int length) {
    return l < length ? dt[(long long) l * dt_stride + head] : 0.0f;
}

// Fills `sums` (all 256 entries) from 256 threads numbered l = 0 .. 255, thread l giving step = dt_l
// (ssd_chunk_step), and returns cum[l] in double (not scaled). Every thread of the block calls it
// together (other groups of 256 with sums of their own); it ends with a barrier.
static __device__ __forceinline__ double ssd_chunk_sums(SsdSums& sums, int l, float step, float a) {
    const int lane = l & 31;
    const int warp = l >> 5;
    double value = (double) step * (double) a;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const double other = __shfl_up_sync(0xffffffffu, value, offset);
        if (lane >= offset) {
            value += other;
        }
    }
    if (lane == 31) {
        sums.warp_totals[warp] = value;
    }
    __syncthreads();
    for (int w = 0; w < warp; w++) {
        value += sums.warp_totals[w];
    }
    const double scaled = value * 1.4426950408889634;  // log2(e)
    const float high = (float) scaled;
    sums.high[l] = high;
    sums.low[l] = (float) (scaled - (double) high);
    sums.step[l] = step;
    __syncthreads();
    return value;
}

// (cum_i − cum_j) · log2(e) from the split sums.
static __device__ __forceinline__ float ssd_difference(const SsdSums& sums, int i, int j) {
    return (sums.high[i] - sums.high[j]) + (sums.low[i] - sums.low[j]);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core products on f32 data: mma.sync m16n8k8 with tf32 operands and f32 accumulators
// (sm_80 and later). Fragments of one warp, with g = lane / 4 and t = lane % 4:
//   A (16 × 8, row major):  a0 = A[g][t], a1 = A[g + 8][t], a2 = A[g][t + 4], a3 = A[g + 8][t + 4]
//   B (8 × 8):              b0 = B[t][g], b1 = B[t + 4][g]
//   D (16 × 8):             d0 = D[g][2t], d1 = D[g][2t + 1], d2 = D[g + 8][2t], d3 = D[g + 8][2t + 1]
// The tensor cores read a 32-bit register as tf32 by dropping its low 13 bits, so f32 bits go to
// them as they are: no conversion instruction per operand, which these kernels, bound by
// instruction issue, would pay for. Without Split an operand is f32 truncated to tf32 (11
// significant bits, relative error up to 2^-10: ~1e-3 in y).
// Split: each operand is carried as big + small (big = v with its low 13 bits cleared, exactly a
// tf32 value; small = v − big, exact in f32 and truncated in turn by the tensor cores) and a product
// as big·big + big·small + small·big: about 2^-20 of each product, near f32's accuracy, at three
// times the tensor work. On an H100 at the anchor shape, against rounding each part with
// cvt.rna.tf32: split-tf32 scan 2.51 → 2.10 ms, tf32 chunk states 0.216 → 0.202 ms, Gram 0.030 → 0.021
// (docs/performance.md); the split scan's worst relative error in the parity tests 1.3e-6 → 1.9e-6.
template <bool Split, int N>
struct SsdOperand {
    uint32_t big[N];
    uint32_t small[Split ? N : 1];

    __device__ __forceinline__ void set(int i, float value) {
        if constexpr (Split) {
            big[i] = __float_as_uint(value) & 0xffffe000u;
            small[i] = __float_as_uint(value - __uint_as_float(big[i]));
        } else {
            big[i] = __float_as_uint(value);
        }
    }
};

static __device__ __forceinline__ void ssd_mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += a · b; the small cross terms first, so that they are not lost against the big one.
template <bool Split>
static __device__ __forceinline__ void ssd_mma(float (&d)[4], const SsdOperand<Split, 4>& a,
        const SsdOperand<Split, 2>& b) {
    if constexpr (Split) {
        ssd_mma_tf32(d, a.small, b.big);
        ssd_mma_tf32(d, a.big, b.small);
    }
    ssd_mma_tf32(d, a.big, b.big);
}

// ---------------------------------------------------------------------------------------------
// Asynchronous copies into shared memory (cp.async, sm_80 and later). A copy of `valid` false
// reads nothing and writes zeros, so padding rows and columns hold zeros rather than stale values.
static __device__ __forceinline__ void ssd_copy16(float* shared, const float* global, bool valid) {
    const unsigned address = (unsigned) __cvta_generic_to_shared(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(address), "l"(global), "r"(valid ? 16 : 0));
}

static __device__ __forceinline__ void ssd_copy4(float* shared, const float* global, bool valid) {
    const unsigned address = (unsigned) __cvta_generic_to_shared(shared);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(address), "l"(global), "r"(valid ? 4 : 0));
}

static __device__ __forceinline__ void ssd_commit() {
    asm volatile("cp.async.commit_group;" ::);
}

// Waits until at most `Pending` committed groups of this thread are still in flight.
template <int Pending>
static __device__ __forceinline__ void ssd_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(Pending));
}

// Queues the copy of rows [row_begin, row_end) × columns [0, COLS) of a row-major global tile
// (row r at origin + r · row_stride) into shared rows of STRIDE floats (row r at shared + r · STRIDE),
// spread over THREADS threads of which this is `thread`. Elements with r ≥ rows_valid or
// column ≥ cols_valid become zero. vector: 16-byte copies, which need origin, row_stride and
// cols_valid aligned to 4 floats; else 4-byte copies.
// `fallback` is any valid global address, given to the copies that read nothing.
template <int COLS, int STRIDE, int THREADS = SSD_THREADS>
static __device__ __forceinline__ void ssd_load_rows(float* shared, const float* origin, long long row_stride,
        int row_begin, int row_end, int rows_valid, int cols_valid, bool vector, const float* fallback,
        int thread = threadIdx.x) {
    if (row_end <= row_begin) {
        return;
    }
    if (vector) {
        constexpr int QUADS = COLS / 4;
        const int total = (row_end - row_begin) * QUADS;
        for (int index = thread; index < total; index += THREADS) {
            const int r = row_begin + index / QUADS;
            const int c = (index % QUADS) * 4;
            const bool valid = r < rows_valid && c < cols_valid;
            ssd_copy16(shared + r * STRIDE + c, valid ? origin + r * row_stride + c : fallback, valid);
        }
    } else {
        const int total = (row_end - row_begin) * COLS;
        for (int index = thread; index < total; index += THREADS) {
            const int r = row_begin + index / COLS;
            const int c = index % COLS;
            const bool valid = r < rows_valid && c < cols_valid;
            ssd_copy4(shared + r * STRIDE + c, valid ? origin + r * row_stride + c : fallback, valid);
        }
    }
}

// The heads a block serves together: up to HEADS consecutive heads of one group, so that they share
// the group's B and C tiles. `set` numbers such runs within the group.
struct SsdHeads {
    int first;
    int count;
};

static __device__ __forceinline__ SsdHeads ssd_heads(int group, int set, int per_block, int heads, int groups) {
    const int per_group = heads / groups;
    SsdHeads result;
    result.first = group * per_group + set * per_block;
    result.count = min(per_block, per_group - set * per_block);
    return result;
}

// Where a block of the chunk-state kernels works. Blocks are numbered p_tile fastest (64 columns of
// head_dim), then n_tile (128 columns of the state), then the set of HEADS heads of a group, then
// the group, then the chunk.
struct SsdStateBlock {
    int p_tile;
    int n_tile;
    int group;
    int q;
    SsdHeads served;
    SsdChunk span;
};

static __device__ __forceinline__ SsdStateBlock ssd_state_block(int heads_per_block, int tokens, const int* starts,
        int chunk, int chunks, int heads, int head_dim, int groups, int state_size) {
    const int p_tiles = (head_dim + 63) / 64;
    const int n_tiles = (state_size + 127) / 128;
    const int sets = (heads / groups + heads_per_block - 1) / heads_per_block;
    int block = blockIdx.x;
    SsdStateBlock result;
    result.p_tile = block % p_tiles;
    block /= p_tiles;
    result.n_tile = block % n_tiles;
    block /= n_tiles;
    const int set = block % sets;
    block /= sets;
    result.group = block % groups;
    result.q = block / groups;
    result.served = ssd_heads(result.group, set, heads_per_block, heads, groups);
    result.span = ssd_chunk(result.q, tokens, starts, chunk, chunks);
    return result;
}

// The chunk-state kernels' prologue, by all 256 threads of the block (thread l for token l): for
// each of the HEADS heads k of the set (a head past the group's last repeats that head), the factors
// f_l = exp(cum_last − cum_l) · dt_l into factors[k · 256 + l], and decay[q, h] = exp(cum_last)
// from the block of tile (0, 0). The factors are visible to the block after its next barrier.
template <int HEADS>
static __device__ __forceinline__ void ssd_state_factors(SsdSums* all_sums, float* factors, const SsdStateBlock& where,
        const float* dt, long long dt_stride, const float* A, float* decay, int heads) {
#pragma unroll
    for (int k = 0; k < HEADS; k++) {
        const int head = where.served.first + min(k, where.served.count - 1);
        const double total = ssd_chunk_sums(all_sums[k], threadIdx.x, ssd_chunk_step(threadIdx.x,
                dt + where.span.first_row * dt_stride, dt_stride, head, where.span.length), A[head]);
        if (threadIdx.x == SSD_MAX_CHUNK - 1 && where.p_tile == 0 && where.n_tile == 0 && k < where.served.count) {
            decay[(long long) where.q * heads + head] = (float) exp(total);
        }
        const int l = threadIdx.x;
        factors[k * SSD_MAX_CHUNK + l] = exp2f(ssd_difference(all_sums[k], SSD_MAX_CHUNK - 1, l))
                * all_sums[k].step[l];
    }
}

// Where a block of the output kernels works and which head this thread serves. Blocks are numbered
// p_tile fastest (64 columns of head_dim each), then the set of HEADS heads of a group, then the
// group, then the chunk; each 256-thread part of the block serves one head of the set, and a part
// past the group's last head repeats that head and stores nothing (serving false).
struct SsdOutputBlock {
    int p_tile;
    int group;
    int q;
    SsdChunk span;
    int part;
    int local;
    bool serving;
    int head;
};

static __device__ __forceinline__ SsdOutputBlock ssd_output_block(int heads_per_block, int tokens,
        const int* starts, int chunk, int chunks, int heads, int head_dim, int groups) {
    const int p_tiles = (head_dim + 63) / 64;
    const int sets = (heads / groups + heads_per_block - 1) / heads_per_block;
    int block = blockIdx.x;
    SsdOutputBlock result;
    result.p_tile = block % p_tiles;
    block /= p_tiles;
    const int set = block % sets;
    block /= sets;
    result.group = block % groups;
    result.q = block / groups;
    const SsdHeads served = ssd_heads(result.group, set, heads_per_block, heads, groups);
    result.span = ssd_chunk(result.q, tokens, starts, chunk, chunks);
    result.part = threadIdx.x / SSD_THREADS;
    result.local = threadIdx.x % SSD_THREADS;
    result.serving = result.part < served.count;
    result.head = served.first + min(result.part, served.count - 1);
    return result;
}

// Where the tiles of one head of an output block start: C's rows of the chunk and group, the head's
// entering state from row p0 (chunks_total, heads, head_dim, state_size), the chunk's Gram matrix
// (chunks_total, groups, padded, padded), and x's rows of the chunk from the head's column p0.
struct SsdOutputOrigins {
    int p0;
    const float* c;
    const float* state;
    const float* gram;
    const float* x;
};

static __device__ __forceinline__ SsdOutputOrigins ssd_output_origins(const SsdOutputBlock& where,
        const float* x, long long x_stride, const float* C, long long bc_stride, const float* gram,
        const float* entering, int heads, int head_dim, int groups, int state_size, int padded) {
    SsdOutputOrigins result;
    result.p0 = 64 * where.p_tile;
    result.c = C + where.span.first_row * bc_stride + (long long) where.group * state_size;
    result.state = entering + (((long long) where.q * heads + where.head) * head_dim + result.p0) * state_size;
    result.gram = gram + ((long long) where.q * groups + where.group) * padded * padded;
    result.x = x + where.span.first_row * x_stride + (long long) where.head * head_dim + result.p0;
    return result;
}

#endif
