// Flash attention forward for prefill (FlashAttention-2's schedule) on tensor cores: bf16 Q, K, V;
// f32 scores, softmax statistics and accumulators; f32 output. On sm_90a both products are
// warpgroup MMAs (wgmma: K and V read by the tensor cores from shared memory once per warpgroup);
// on the fatbin's other targets they are mma.sync m16n8k16 with ldmatrix fragments. Both paths
// share the tiles, the softmax and the accumulator layout.
#include "common.cuh"
#include "warpgroup_mma.cuh"

// A block owns BLOCK_M = WARPS · 16 · M_TILES query rows of one head and walks the key axis in
// tiles of BLOCK_N. Each group of four warps (a warpgroup) owns 64 · M_TILES consecutive rows,
// as M_TILES tiles of 64; within a tile, warp w of the group owns rows 16w .. 16w + 15. So a
// row's softmax never leaves its warp. Per key tile: S = Q Kᵀ, the online softmax on S in
// registers, then O += P V with P repacked from the score accumulators as the A operand (the
// accumulator of two neighbouring 8-key groups is exactly the A fragment of a 16-key step).
// One K and one V buffer in shared memory, loaded by cp.async: V of tile j streams in while S_j
// is computed, K of tile j+1 while P_j V_j is.
//
// Shared tiles are panels of rows × 128 bytes (64 head-dim columns), 16-byte chunk c of row r at
// chunk c ^ (r mod 8): the layout wgmma reads with its 128-byte swizzle, and one in which the
// eight rows an ldmatrix phase reads (or a cp.async phase writes) fall in eight bank groups.

namespace coil_flash {

static __device__ __forceinline__ unsigned shared_address(const void* pointer) {
    return (unsigned) __cvta_generic_to_shared(pointer);
}

// Byte offset of chunk (8 columns) `chunk` of row `row` in a tile of ROWS rows.
template <int ROWS>
static __device__ __forceinline__ unsigned tile_offset(int row, int chunk) {
    return (chunk >> 3) * (ROWS * 128) + coil_swizzled_chunk(row, chunk & 7);
}

// 16 bytes global → shared, bypassing L1; valid == false writes zeros (rows past the sequence).
static __device__ __forceinline__ void copy_async_16(unsigned destination, const void* source, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source),
                 "r"(valid ? 16 : 0));
}

static __device__ __forceinline__ void commit_copies() {
    asm volatile("cp.async.commit_group;\n" ::);
}

// This thread's copies have landed; on sm_90a they are also made visible to wgmma's reads. A
// barrier after it publishes every thread's copies.
static __device__ __forceinline__ void wait_copies() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#ifdef COIL_HAS_WGMMA
    coil_wgmma::publish_shared_to_tensor_cores();
#endif
}

#ifndef COIL_HAS_WGMMA
// The mma.sync path's fragments (the wgmma path reads shared memory through descriptors).
static __device__ __forceinline__ void load_matrices(unsigned (&fragment)[4], unsigned address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
                 : "r"(address));
}

static __device__ __forceinline__ void load_matrices_transposed(unsigned (&fragment)[4], unsigned address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
                 : "r"(address));
}

// c (16×8, f32) += a (16×16, bf16, row-major) · b (16×8, bf16, column-major).
static __device__ __forceinline__ void multiply_accumulate(float (&c)[4], const unsigned (&a)[4], unsigned b0,
        unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

static __device__ __forceinline__ unsigned pack_bf16(float low, float high) {
    __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
    return *reinterpret_cast<unsigned*>(&pair);
}

// Rows first .. first + ROWS of a [rows, row_stride] bf16 matrix into a shared tile; rows at or
// past limit read as zeros. Each thread copies one 16-byte column chunk of every
// (THREADS / CHUNKS)-th row: one source pointer and one destination that step by constants (the
// row step is a multiple of 8, so the swizzle is the same on every step).
template <int ROWS, int HEAD_DIM, int THREADS>
static __device__ __forceinline__ void load_rows(unsigned tile, const __nv_bfloat16* base, size_t row_stride,
        int first, int limit) {
    constexpr int CHUNKS = HEAD_DIM / 8;
    constexpr int ROWS_PER_STEP = THREADS / CHUNKS;
    static_assert(THREADS % CHUNKS == 0 && ROWS_PER_STEP % 8 == 0 && ROWS % ROWS_PER_STEP == 0,
            "tile rows must split evenly over the threads");
    const int row = threadIdx.x / CHUNKS;
    const int chunk = threadIdx.x % CHUNKS;
    const __nv_bfloat16* source = base + (size_t) (first + row) * row_stride + chunk * 8;
    const unsigned destination = tile + tile_offset<ROWS>(row, chunk);
#pragma unroll
    for (int step = 0; step < ROWS / ROWS_PER_STEP; step++) {
        const bool valid = first + row + step * ROWS_PER_STEP < limit;
        copy_async_16(destination + step * ROWS_PER_STEP * 128,
                valid ? source + (size_t) step * ROWS_PER_STEP * row_stride : base, valid);
    }
}

// S (this warp's 16 · M_TILES rows × BLOCK_N keys) = Q Kᵀ, raw (unscaled) scores.
template <int HEAD_DIM, int M_TILES, int BLOCK_M, int BLOCK_N>
static __device__ __forceinline__ void scores(float (&s)[M_TILES][BLOCK_N / 8][4], unsigned q_tile,
        unsigned k_tile, int group_row, int warp_row) {
    constexpr int D_STEPS = HEAD_DIM / 16;
#ifdef COIL_HAS_WGMMA
    // Per 16-column k-step: A = 64 Q rows, B = the BLOCK_N key rows, both K-major; a k-step's
    // columns are 32 bytes into a panel's rows.
    coil_wgmma::begin();
#pragma unroll
    for (int ks = 0; ks < D_STEPS; ks++) {
        const unsigned column = (ks & 3) * 32;
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
            const unsigned q_address = q_tile + (ks >> 2) * (BLOCK_M * 128) + (group_row + mt * 64) * 128 + column;
            const unsigned k_address = k_tile + (ks >> 2) * (BLOCK_N * 128) + column;
            coil_wgmma::multiply_shared<BLOCK_N>(s[mt], coil_wgmma::k_major(q_address),
                    coil_wgmma::k_major(k_address), ks > 0);
        }
    }
    coil_wgmma::end_and_wait();
    coil_wgmma::hold(s);
#else
    // ldmatrix addresses: lane l names row l mod 16 (A) or key l mod 8 (+8 for l ≥ 16) (B) of
    // the four 8×8 matrices; see the fragment layouts of mma.m16n8k16 in the PTX manual.
    const int lane = threadIdx.x & 31;
    const int k_row = (lane & 7) + ((lane >> 4) << 3);
    const int k_chunk = (lane >> 3) & 1;
#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
        for (int ng = 0; ng < BLOCK_N / 8; ng++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[mt][ng][e] = 0.0f;
            }
        }
    }
#pragma unroll
    for (int ks = 0; ks < D_STEPS; ks++) {
        unsigned a[M_TILES][4];
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
            load_matrices(a[mt], q_tile + tile_offset<BLOCK_M>(warp_row + mt * 64 + (lane & 15), ks * 2 + (lane >> 4)));
        }
#pragma unroll
        for (int pair = 0; pair < BLOCK_N / 16; pair++) {
            unsigned b[4];
            load_matrices(b, k_tile + tile_offset<BLOCK_N>(pair * 16 + k_row, ks * 2 + k_chunk));
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) {
                multiply_accumulate(s[mt][2 * pair], a[mt], b[0], b[1]);
                multiply_accumulate(s[mt][2 * pair + 1], a[mt], b[2], b[3]);
            }
        }
    }
#endif
}

// O (this warp's rows × HEAD_DIM) += P V, P in bf16 as A fragments (k-step ks covers keys
// 16ks .. 16ks + 15).
template <int HEAD_DIM, int M_TILES, int BLOCK_N>
static __device__ __forceinline__ void accumulate_values(float (&o)[M_TILES][HEAD_DIM / 8][4],
        const unsigned (&p)[M_TILES][BLOCK_N / 16][4], unsigned v_tile) {
    constexpr int N_STEPS = BLOCK_N / 16;
#ifdef COIL_HAS_WGMMA
    // B = 16 V rows per k-step, N-major (head dim along the rows): 2048 bytes per step, the
    // second 64 columns of head dim 128 one panel (BLOCK_N rows) further.
    coil_wgmma::hold(o);
    coil_wgmma::begin();
#pragma unroll
    for (int ks = 0; ks < N_STEPS; ks++) {
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
            coil_wgmma::multiply_registers_n_major<HEAD_DIM>(o[mt], p[mt][ks],
                    coil_wgmma::n_major(v_tile + ks * 2048, BLOCK_N * 128));
        }
    }
    coil_wgmma::end_and_wait();
    coil_wgmma::hold(o);
#else
    const int lane = threadIdx.x & 31;
    const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3);
    const int v_chunk = lane >> 4;
#pragma unroll
    for (int ks = 0; ks < N_STEPS; ks++) {
#pragma unroll
        for (int pair = 0; pair < HEAD_DIM / 16; pair++) {
            unsigned b[4];
            load_matrices_transposed(b, v_tile + tile_offset<BLOCK_N>(ks * 16 + v_row, pair * 2 + v_chunk));
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) {
                multiply_accumulate(o[mt][2 * pair], p[mt][ks], b[0], b[1]);
                multiply_accumulate(o[mt][2 * pair + 1], p[mt][ks], b[2], b[3]);
            }
        }
    }
#endif
}

//   q: [batch, tokens, q_heads, HEAD_DIM] bf16;  k, v: [batch, keys, kv_heads, HEAD_DIM] bf16
//   out: [batch, tokens, q_heads, HEAD_DIM] f32;  lse: [batch, tokens, q_heads] f32, or null
// Query t sits at position past + t (past ≥ 0), key j at position j; causal: it sees keys
// 0 .. past + t, else every key. Where lse is given, it receives each row's log2 Σ 2^(score ·
// log2 e) over the keys seen (−inf, and a zero row of out, for a row that sees none): the
// statistics that merge the partial results of several key blocks (ring attention).
// Grid: (q_heads, ceil(tokens / BLOCK_M), batch), the row blocks in reverse so that the longest
// causal blocks start first. Dynamic shared memory: (BLOCK_M + 2 · BLOCK_N) · HEAD_DIM · 2 bytes
// plus 1024 to align the tiles.
// Packed (q_starts non-null): the prompt chunks of several sequences, chunk z's queries in rows
// q_starts[z] .. q_starts[z + 1] − 1 of q and out and its keys in rows k_starts[z] .. k_starts[z + 1] − 1
// of k and v, its past = its keys − its queries; `tokens`, `keys` and `past` are then unused, and
// the grid's y covers the longest chunk (blocks past a shorter one's queries return at once).
template <int HEAD_DIM, int WARPS, int M_TILES, int BLOCK_N>
static __device__ __forceinline__ void forward(const __nv_bfloat16* __restrict__ q,
        const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v, float* __restrict__ out,
        float* __restrict__ lse, int tokens, int keys, int past, int q_heads, int kv_heads, float scale_log2,
        int causal, const int* __restrict__ q_starts = nullptr, const int* __restrict__ k_starts = nullptr) {
    constexpr int THREADS = WARPS * 32;
    constexpr int GROUP_ROWS = 64 * M_TILES;
    constexpr int BLOCK_M = WARPS * 16 * M_TILES;
    constexpr int N_GROUPS = BLOCK_N / 8;   // 8-key column groups of S
    constexpr int N_STEPS = BLOCK_N / 16;   // k-steps of O += P V
    constexpr int D_GROUPS = HEAD_DIM / 8;  // 8-wide column groups of O
    static_assert(WARPS % 4 == 0 && HEAD_DIM % 64 == 0, "whole warpgroups, whole 64-column panels");

    extern __shared__ __align__(1024) unsigned char shared[];
    const unsigned q_tile = (shared_address(shared) + 1023) & ~1023u;
    const unsigned k_tile = q_tile + BLOCK_M * HEAD_DIM * 2;
    const unsigned v_tile = k_tile + BLOCK_N * HEAD_DIM * 2;

    const int head = blockIdx.x;
    const int m_block = gridDim.y - 1 - blockIdx.y;
    const int sequence = blockIdx.z;
    const int kv_head = head / (q_heads / kv_heads);
    const int m0 = m_block * BLOCK_M;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int group = lane >> 2;   // row within an 8-row half of a fragment
    const int quad = lane & 3;     // column pair within an 8-column group
    // This warpgroup's first row, and this warp's first row of tile 0 (tile mt: + 64 mt).
    const int group_row = (warp >> 2) * GROUP_ROWS;
    const int warp_row = group_row + (warp & 3) * 16;

    // This block's sequence: its first query row and key row.
    size_t q_row = (size_t) sequence * tokens;
    size_t k_row = (size_t) sequence * keys;
    if (q_starts != nullptr) {
        q_row = q_starts[sequence];
        k_row = k_starts[sequence];
        tokens = q_starts[sequence + 1] - (int) q_row;
        keys = k_starts[sequence + 1] - (int) k_row;
        past = keys - tokens;
        if (m0 >= tokens) {
            return;
        }
    }
    const size_t q_stride = (size_t) q_heads * HEAD_DIM;
    const size_t kv_stride = (size_t) kv_heads * HEAD_DIM;
    const __nv_bfloat16* q_base = q + (q_row * q_heads + head) * HEAD_DIM;
    const __nv_bfloat16* k_base = k + (k_row * kv_heads + kv_head) * HEAD_DIM;
    const __nv_bfloat16* v_base = v + (k_row * kv_heads + kv_head) * HEAD_DIM;
    float* out_base = out + (q_row * q_heads + head) * HEAD_DIM;

    const int key_end = causal ? min(keys, past + m0 + BLOCK_M) : keys;
    const int tiles = (key_end + BLOCK_N - 1) / BLOCK_N;

    load_rows<BLOCK_M, HEAD_DIM, THREADS>(q_tile, q_base, q_stride, m0, tokens);
    load_rows<BLOCK_N, HEAD_DIM, THREADS>(k_tile, k_base, kv_stride, 0, keys);
    commit_copies();

    float o[M_TILES][D_GROUPS][4];
    float row_max[M_TILES][2];
    float row_sum[M_TILES][2];
#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
        for (int dg = 0; dg < D_GROUPS; dg++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                o[mt][dg][e] = 0.0f;
            }
        }
#pragma unroll
        for (int half = 0; half < 2; half++) {
            row_max[mt][half] = -INFINITY;
            row_sum[mt][half] = 0.0f;
        }
    }

    for (int tile = 0; tile < tiles; tile++) {
        const int n0 = tile * BLOCK_N;
        // K_tile has landed, and every warp is done with V of the previous tile.
        wait_copies();
        __syncthreads();
        load_rows<BLOCK_N, HEAD_DIM, THREADS>(v_tile, v_base + (size_t) n0 * kv_stride, kv_stride, 0, keys - n0);
        commit_copies();

        float s[M_TILES][N_GROUPS][4];
        scores<HEAD_DIM, M_TILES, BLOCK_M, BLOCK_N>(s, q_tile, k_tile, group_row, warp_row);

        // Keys past the sequence, or (causal) past the query's position, out. Scores stay raw:
        // the scale (positive) commutes with the maximum and joins the exponent in one fma.
        if (n0 + BLOCK_N > keys || (causal && n0 + BLOCK_N - 1 > past + m0)) {
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) {
                const int row = m0 + warp_row + mt * 64 + group;
#pragma unroll
                for (int ng = 0; ng < N_GROUPS; ng++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int key = n0 + ng * 8 + quad * 2 + (e & 1);
                        const int query_position = past + row + (e >> 1) * 8;
                        if (key >= keys || (causal && key > query_position)) {
                            s[mt][ng][e] = -INFINITY;
                        }
                    }
                }
            }
        }

        // Online softmax: each row's statistics live in the four lanes of its quad.
        float correction[M_TILES][2];
        bool max_moved = false;
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                float tile_max = -INFINITY;
#pragma unroll
                for (int ng = 0; ng < N_GROUPS; ng++) {
                    tile_max = fmaxf(tile_max, fmaxf(s[mt][ng][2 * half], s[mt][ng][2 * half + 1]));
                }
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
                const float new_max = fmaxf(row_max[mt][half], tile_max);
                max_moved |= new_max > row_max[mt][half];
                // A row with every key so far masked keeps a zero base: 2^(-inf - 0) = 0, never NaN.
                const float base = new_max == -INFINITY ? 0.0f : new_max * scale_log2;
                correction[mt][half] = coil_exp2_approx(fmaf(row_max[mt][half], scale_log2, -base));
                row_max[mt][half] = new_max;
                float sum = 0.0f;
#pragma unroll
                for (int ng = 0; ng < N_GROUPS; ng++) {
                    const float p0 = coil_exp2_approx(fmaf(s[mt][ng][2 * half], scale_log2, -base));
                    const float p1 = coil_exp2_approx(fmaf(s[mt][ng][2 * half + 1], scale_log2, -base));
                    s[mt][ng][2 * half] = p0;
                    s[mt][ng][2 * half + 1] = p1;
                    sum += p0 + p1;
                }
                row_sum[mt][half] = row_sum[mt][half] * correction[mt][half] + sum;
            }
        }
        // Once the maxima settle (most tiles of a long row) the corrections are 1 up to the
        // rounding of the base: the warp skips rescaling its accumulators unless a row moved.
        if (__any_sync(0xffffffffu, max_moved)) {
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
                for (int dg = 0; dg < D_GROUPS; dg++) {
                    o[mt][dg][0] *= correction[mt][0];
                    o[mt][dg][1] *= correction[mt][0];
                    o[mt][dg][2] *= correction[mt][1];
                    o[mt][dg][3] *= correction[mt][1];
                }
            }
        }

        // P in bf16, laid out as the A operand of P V: k-step ks covers key groups 2ks and 2ks + 1.
        unsigned p[M_TILES][N_STEPS][4];
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
            for (int ks = 0; ks < N_STEPS; ks++) {
                p[mt][ks][0] = pack_bf16(s[mt][2 * ks][0], s[mt][2 * ks][1]);
                p[mt][ks][1] = pack_bf16(s[mt][2 * ks][2], s[mt][2 * ks][3]);
                p[mt][ks][2] = pack_bf16(s[mt][2 * ks + 1][0], s[mt][2 * ks + 1][1]);
                p[mt][ks][3] = pack_bf16(s[mt][2 * ks + 1][2], s[mt][2 * ks + 1][3]);
            }
        }

        // V_tile has landed, and every warp is done with K_tile: fetch the next one behind P V.
        wait_copies();
        __syncthreads();
        if (tile + 1 < tiles) {
            load_rows<BLOCK_N, HEAD_DIM, THREADS>(k_tile, k_base + (size_t) (n0 + BLOCK_N) * kv_stride, kv_stride, 0,
                    keys - n0 - BLOCK_N);
            commit_copies();
        }

        accumulate_values<HEAD_DIM, M_TILES, BLOCK_N>(o, p, v_tile);
    }

#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float sum = row_sum[mt][half];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
            const int row = m0 + warp_row + mt * 64 + group + half * 8;
            if (row < tokens) {
                if (lse != nullptr && quad == 0) {
                    lse[(q_row + row) * q_heads + head] =
                            sum > 0.0f ? fmaf(row_max[mt][half], scale_log2, log2f(sum)) : -INFINITY;
                }
                float* target = out_base + (size_t) row * q_stride + quad * 2;
#pragma unroll
                for (int dg = 0; dg < D_GROUPS; dg++) {
                    *reinterpret_cast<float2*>(target + dg * 8) =
                            make_float2(o[mt][dg][2 * half] * inverse, o[mt][dg][2 * half + 1] * inverse);
                }
            }
        }
    }
}

}  // namespace coil_flash

// One entry point per tile shape: flash_attention_d{HEAD_DIM}_m{BLOCK_M}_n{BLOCK_N}_w{WARPS}.
// FlashAttentionKernel.Tile lists them; MIN_BLOCKS caps the registers so that many blocks share
// a multiprocessor.
#define COIL_FLASH_ATTENTION(HEAD_DIM, BLOCK_M, BLOCK_N, WARPS, MIN_BLOCKS)                                         \
    extern "C" __global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS)                                           \
            flash_attention_d##HEAD_DIM##_m##BLOCK_M##_n##BLOCK_N##_w##WARPS(const __nv_bfloat16* q,               \
                    const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, int tokens, int past,              \
                    int q_heads, int kv_heads, float scale_log2, int causal) {                                     \
        static_assert(BLOCK_M % (16 * WARPS) == 0, "each warp owns whole 16-row tiles");                          \
        coil_flash::forward<HEAD_DIM, WARPS, BLOCK_M / (16 * WARPS), BLOCK_N>(q, k, v, out, nullptr, tokens,      \
                past + tokens, past, q_heads, kv_heads, scale_log2, causal);                                       \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS)                                           \
            flash_attention_packed_d##HEAD_DIM##_m##BLOCK_M##_n##BLOCK_N##_w##WARPS(const __nv_bfloat16* q,        \
                    const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, const int* q_starts,               \
                    const int* k_starts, int q_heads, int kv_heads, float scale_log2, int causal) {                \
        coil_flash::forward<HEAD_DIM, WARPS, BLOCK_M / (16 * WARPS), BLOCK_N>(q, k, v, out, nullptr, 0, 0, 0,     \
                q_heads, kv_heads, scale_log2, causal, q_starts, k_starts);                                        \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS)                                           \
            flash_attention_partial_d##HEAD_DIM##_m##BLOCK_M##_n##BLOCK_N##_w##WARPS(const __nv_bfloat16* q,       \
                    const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, float* lse, int tokens, int keys,  \
                    int past, int q_heads, int kv_heads, float scale_log2, int causal) {                           \
        coil_flash::forward<HEAD_DIM, WARPS, BLOCK_M / (16 * WARPS), BLOCK_N>(q, k, v, out, lse, tokens, keys,    \
                past, q_heads, kv_heads, scale_log2, causal);                                                      \
    }

COIL_FLASH_ATTENTION(64, 128, 128, 8, 2)
COIL_FLASH_ATTENTION(64, 128, 128, 4, 2)
COIL_FLASH_ATTENTION(128, 128, 64, 8, 2)
COIL_FLASH_ATTENTION(128, 128, 64, 4, 2)
