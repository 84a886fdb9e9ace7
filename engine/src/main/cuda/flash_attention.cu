// Flash attention forward for prefill (FlashAttention-2's schedule) on tensor cores through
// mma.sync m16n8k16: bf16 Q, K, V; f32 scores, softmax statistics and accumulators; f32 output.
#include "common.cuh"

// A block owns BLOCK_M = WARPS · 16 · M_TILES query rows of one head and walks the key axis in
// tiles of BLOCK_N; each warp owns 16 · M_TILES rows, so a row's softmax never leaves its warp.
// Per key tile: S = Q Kᵀ (mma, A = Q, B = K rows), the online softmax on S in registers, then
// O += P V with P reused from the score accumulators as the A operand (the m16n8 accumulator of
// two neighbouring key groups is exactly the m16k16 A fragment) and V read transposed by
// ldmatrix. One K and one V buffer in shared memory, loaded by cp.async: V of tile j streams in
// while S_j is computed, K of tile j+1 while P_j V_j is.
//
// Shared-memory rows are head_dim bf16 (128 or 256 bytes), cut into 16-byte chunks; chunk c of
// row r sits at chunk c ^ (r mod 8), so the eight rows one ldmatrix phase reads (and the eight
// chunks one cp.async phase writes) fall in eight different bank groups.

namespace coil_flash {

static __device__ __forceinline__ unsigned shared_address(const void* pointer) {
    return (unsigned) __cvta_generic_to_shared(pointer);
}

template <int ROW_BYTES>
static __device__ __forceinline__ unsigned swizzled(int row, int chunk) {
    return row * ROW_BYTES + ((chunk ^ (row & 7)) << 4);
}

// 16 bytes global → shared, bypassing L1; valid == false writes zeros (rows past the sequence).
static __device__ __forceinline__ void copy_async_16(unsigned destination, const void* source, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source),
                 "r"(valid ? 16 : 0));
}

static __device__ __forceinline__ void commit_copies() {
    asm volatile("cp.async.commit_group;\n" ::);
}

static __device__ __forceinline__ void wait_copies() {
    asm volatile("cp.async.wait_group 0;\n" ::);
}

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

// 2^x; 2^-inf = 0.
static __device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

static __device__ __forceinline__ unsigned pack_bf16(float low, float high) {
    __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
    return *reinterpret_cast<unsigned*>(&pair);
}

// Rows first .. first + ROWS of a [rows, row_stride] bf16 matrix into a swizzled shared tile;
// rows at or past limit read as zeros. Each thread copies one 16-byte column chunk of every
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
    const unsigned destination = tile + swizzled<HEAD_DIM * 2>(row, chunk);
#pragma unroll
    for (int step = 0; step < ROWS / ROWS_PER_STEP; step++) {
        const bool valid = first + row + step * ROWS_PER_STEP < limit;
        copy_async_16(destination + step * ROWS_PER_STEP * HEAD_DIM * 2,
                valid ? source + (size_t) step * ROWS_PER_STEP * row_stride : base, valid);
    }
}

//   q: [batch, tokens, q_heads, HEAD_DIM] bf16;  k, v: [batch, keys, kv_heads, HEAD_DIM] bf16
//   out: [batch, tokens, q_heads, HEAD_DIM] f32;  lse: [batch, tokens, q_heads] f32, or null
// Query t sits at position past + t (past ≥ 0), key j at position j; causal: it sees keys
// 0 .. past + t, else every key. Where lse is given, it receives each row's log2 Σ 2^(score ·
// log2 e) over the keys seen (−inf, and a zero row of out, for a row that sees none): the
// statistics that merge the partial results of several key blocks (ring attention).
// Grid: (q_heads, ceil(tokens / BLOCK_M), batch), the row blocks in reverse so that the longest
// causal blocks start first. Dynamic shared memory: (BLOCK_M + 2 · BLOCK_N) · HEAD_DIM · 2 bytes.
template <int HEAD_DIM, int WARPS, int M_TILES, int BLOCK_N>
static __device__ __forceinline__ void forward(const __nv_bfloat16* __restrict__ q,
        const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v, float* __restrict__ out,
        float* __restrict__ lse, int tokens, int keys, int past, int q_heads, int kv_heads, float scale_log2,
        int causal) {
    constexpr int THREADS = WARPS * 32;
    constexpr int WARP_ROWS = 16 * M_TILES;
    constexpr int BLOCK_M = WARPS * WARP_ROWS;
    constexpr int ROW_BYTES = HEAD_DIM * 2;
    constexpr int D_STEPS = HEAD_DIM / 16;  // k-steps of S = Q Kᵀ
    constexpr int N_GROUPS = BLOCK_N / 8;   // 8-key column groups of S
    constexpr int N_STEPS = BLOCK_N / 16;   // k-steps of O += P V
    constexpr int D_GROUPS = HEAD_DIM / 8;  // 8-wide column groups of O
    // Q is reread from shared memory on every key tile: the accumulators need the registers.

    extern __shared__ __align__(128) unsigned char shared[];
    const unsigned q_tile = shared_address(shared);
    const unsigned k_tile = q_tile + BLOCK_M * ROW_BYTES;
    const unsigned v_tile = k_tile + BLOCK_N * ROW_BYTES;

    const int head = blockIdx.x;
    const int m_block = gridDim.y - 1 - blockIdx.y;
    const int sequence = blockIdx.z;
    const int kv_head = head / (q_heads / kv_heads);
    const int m0 = m_block * BLOCK_M;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int group = lane >> 2;   // row within an 8-row half of a fragment
    const int quad = lane & 3;     // column pair within an 8-column group

    const size_t q_stride = (size_t) q_heads * HEAD_DIM;
    const size_t kv_stride = (size_t) kv_heads * HEAD_DIM;
    const __nv_bfloat16* q_base = q + ((size_t) sequence * tokens * q_heads + head) * HEAD_DIM;
    const __nv_bfloat16* k_base = k + ((size_t) sequence * keys * kv_heads + kv_head) * HEAD_DIM;
    const __nv_bfloat16* v_base = v + ((size_t) sequence * keys * kv_heads + kv_head) * HEAD_DIM;
    float* out_base = out + ((size_t) sequence * tokens * q_heads + head) * HEAD_DIM;

    const int key_end = causal ? min(keys, past + m0 + BLOCK_M) : keys;
    const int tiles = (key_end + BLOCK_N - 1) / BLOCK_N;

    load_rows<BLOCK_M, HEAD_DIM, THREADS>(q_tile, q_base, q_stride, m0, tokens);
    load_rows<BLOCK_N, HEAD_DIM, THREADS>(k_tile, k_base, kv_stride, 0, keys);
    commit_copies();

    // ldmatrix addresses: lane l names row l mod 16 (A) or key l mod 8 (+8 for l ≥ 16) (B) of
    // the four 8×8 matrices; see the fragment layouts of mma.m16n8k16 in the PTX manual.
    const int a_row = warp * WARP_ROWS + (lane & 15);
    const int a_chunk = lane >> 4;
    const int k_row = (lane & 7) + ((lane >> 4) << 3);
    const int k_chunk = (lane >> 3) & 1;
    const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3);
    const int v_chunk = lane >> 4;

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
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
            for (int ng = 0; ng < N_GROUPS; ng++) {
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
                load_matrices(a[mt], q_tile + swizzled<ROW_BYTES>(a_row + mt * 16, ks * 2 + a_chunk));
            }
#pragma unroll
            for (int pair = 0; pair < N_GROUPS / 2; pair++) {
                unsigned b[4];
                load_matrices(b, k_tile + swizzled<ROW_BYTES>(pair * 16 + k_row, ks * 2 + k_chunk));
#pragma unroll
                for (int mt = 0; mt < M_TILES; mt++) {
                    multiply_accumulate(s[mt][2 * pair], a[mt], b[0], b[1]);
                    multiply_accumulate(s[mt][2 * pair + 1], a[mt], b[2], b[3]);
                }
            }
        }

        // Keys past the sequence, or (causal) past the query's position, out. Scores stay raw:
        // the scale (positive) commutes with the maximum and joins the exponent in one fma.
        if (n0 + BLOCK_N > keys || (causal && n0 + BLOCK_N - 1 > past + m0)) {
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) {
                const int row = m0 + warp * WARP_ROWS + mt * 16 + group;
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
                correction[mt][half] = exp2_approx(fmaf(row_max[mt][half], scale_log2, -base));
                row_max[mt][half] = new_max;
                float sum = 0.0f;
#pragma unroll
                for (int ng = 0; ng < N_GROUPS; ng++) {
                    const float p0 = exp2_approx(fmaf(s[mt][ng][2 * half], scale_log2, -base));
                    const float p1 = exp2_approx(fmaf(s[mt][ng][2 * half + 1], scale_log2, -base));
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

#pragma unroll
        for (int ks = 0; ks < N_STEPS; ks++) {
#pragma unroll
            for (int pair = 0; pair < D_GROUPS / 2; pair++) {
                unsigned b[4];
                load_matrices_transposed(b, v_tile + swizzled<ROW_BYTES>(ks * 16 + v_row, pair * 2 + v_chunk));
#pragma unroll
                for (int mt = 0; mt < M_TILES; mt++) {
                    multiply_accumulate(o[mt][2 * pair], p[mt][ks], b[0], b[1]);
                    multiply_accumulate(o[mt][2 * pair + 1], p[mt][ks], b[2], b[3]);
                }
            }
        }
    }

#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float sum = row_sum[mt][half];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
            const int row = m0 + warp * WARP_ROWS + mt * 16 + group + half * 8;
            if (row < tokens) {
                if (lse != nullptr && quad == 0) {
                    lse[((size_t) sequence * tokens + row) * q_heads + head] =
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
            flash_attention_partial_d##HEAD_DIM##_m##BLOCK_M##_n##BLOCK_N##_w##WARPS(const __nv_bfloat16* q,       \
                    const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, float* lse, int tokens, int keys,  \
                    int past, int q_heads, int kv_heads, float scale_log2, int causal) {                           \
        coil_flash::forward<HEAD_DIM, WARPS, BLOCK_M / (16 * WARPS), BLOCK_N>(q, k, v, out, lse, tokens, keys,    \
                past, q_heads, kv_heads, scale_log2, causal);                                                      \
    }

COIL_FLASH_ATTENTION(64, 128, 128, 4, 2)
COIL_FLASH_ATTENTION(64, 128, 64, 4, 2)
COIL_FLASH_ATTENTION(128, 128, 64, 4, 2)
COIL_FLASH_ATTENTION(128, 128, 32, 4, 2)
