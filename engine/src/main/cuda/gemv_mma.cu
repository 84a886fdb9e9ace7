// The few-rows product of gemv.cu for 3 to 16 rows, on tensor cores: out[r, n] = Σ_k x[r, k] · W[n, k],
// W bf16 (N, K) row-major, x bf16 in shared memory (made by the same operand code as gemv.cu, so the
// operand is bit for bit the same), f32 accumulation. gemv.cu's kernels multiply on the CUDA cores,
// one column a warp: their work after the wait grows with the rows, and from 4 rows it, not the
// weights, sets their time. Here a block owns 16 weight rows (output columns) and its 8 warps split
// K: each warp holds its slice of the 16 rows in registers, loaded before the wait as 16-byte
// chunks, and multiplies it by each 8 rows of x with mma.m16n8k16 (A = the weights, 16 × 16; B = x,
// 16 × 8 decode rows, one n-tile, two for 16 rows; rows beyond `rows` read as zero). The warps' partial sums meet in shared
// memory and are added in warp order, so a launch's output does not depend on timing.
//
// The mma's k order is permuted (the sum does not care): in k32 block b, lane (g = lane / 4,
// t = lane % 4) loads weights k = 32b + 8t .. 32b + 8t + 7 of rows g and g + 8 as one 16-byte chunk
// each, and mma step s (0, 1) takes their elements 4s .. 4s + 3 as its k slots 2t, 2t + 1, 2t + 8,
// 2t + 9; B takes x at the same k, 8 bytes of row g from shared memory.
//
// Epilogues as in gemv.cu: up to three segments (q, k, v), the MLP's silu(gate) · up (a block's 16
// rows are 8 gate rows and the 8 up rows of the same outputs) and Mamba-2's conv update after
// in_proj (computed after the wait here: the state it reads was last written by this launch's
// kernel a step earlier). K must be a multiple of 32.
//
// Grid: Σ_s ceil(ns / 16), or ceil(I / 8) with silu_pair; block: 256 threads; dynamic shared
// memory: 2 · rows · K bytes.
#include "gemv_operand.cuh"

// k32 blocks a warp holds in registers (HELD, by mode): 8 warps × 8 × 32 = K up to 2048 in one pass
// for the plain operands; the normed ones keep registers for the norm's values and hold 4 (K of 1024:
// the residual norm's rows of the hidden size) or 6 (1536: Mamba-2's gated norm of d_inner), taking
// more passes for wider rows (their later weights loaded after the wait).

static __device__ __forceinline__ void coil_mma_bf16_16x8x16(float (&d)[4], const unsigned int (&a)[4],
        unsigned int b0, unsigned int b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

template <int MODE, int ROWS, int HELD, int CACHED>
static __device__ __forceinline__ void coil_gemv_mma(COIL_GEMV_BODY_PARAMETERS) {
    // Decode rows a block multiplies: one mma n-tile of 8, or two for 16 rows (the second's B from
    // rows 8 .. 15 of x; every row's sums are those of one tile, so a row's product does not
    // depend on how many rows share the launch).
    constexpr int TILES = ROWS > 8 ? 2 : 1;
    constexpr int COLUMNS = 8 * TILES;
    static_assert(COLUMNS * 16 <= 32 * 8, "the pair's totals go through scratch");
    extern __shared__ __align__(16) unsigned char coil_gemv_shared[];
    __shared__ float scratch[32 * 8];
    __shared__ float partial[COIL_GEMV_WARPS][16][COLUMNS];  // (warp, block row, decode row)
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const bool pair = silu_pair > 0;

    // This block's segment and its first output there.
    const int blocks0 = pair ? (silu_pair + 7) / 8 : (n0 + 15) / 16;
    const int blocks1 = (n1 + 15) / 16;
    const CoilGemvSegment segment = coil_gemv_segment(blocks0, blocks1, w0, out0, n0, w1, out1, n1, w2, out2, n2);
    const int block = segment.block;
    const __nv_bfloat16* weights = segment.weights;
    float* out = segment.out;
    const int columns = segment.columns;
    // The weight row of the block's rows c (0..15): 16 consecutive columns, or with the pair 8
    // gate rows j0 + c and the up rows I + j0 + c - 8 of the same outputs.
    const int first = pair ? block * 8 : block * 16;
    auto weight_row = [&](int c) {
        return pair ? (c < 8 ? first + c : silu_pair + first + c - 8) : first + c;
    };
    auto row_active = [&](int c) { return pair ? first + (c & 7) < silu_pair : first + c < columns; };

    // This warp's k32 blocks: [kb_first, kb_end) of k / 32.
    const int kblocks = k / 32;
    const int kb_first = warp * kblocks / COIL_GEMV_WARPS;
    const int kb_end = (warp + 1) * kblocks / COIL_GEMV_WARPS;
    const bool low_active = row_active(g);
    const bool high_active = row_active(g + 8);
    const uint4* low = reinterpret_cast<const uint4*>(weights + (size_t) (low_active ? weight_row(g) : 0) * k);
    const uint4* high = reinterpret_cast<const uint4*>(weights + (size_t) (high_active ? weight_row(g + 8) : 0) * k);
    uint4 held_low[HELD];
    uint4 held_high[HELD];
    // The weights of the HELD k32 blocks from pass_first into registers (zeros past the warp's last).
    auto load_pass = [&](int pass_first) {
#pragma unroll
        for (int i = 0; i < HELD; i++) {
            const int kb = pass_first + i;
            const bool inside = kb < kb_end;
            held_low[i] = inside && low_active ? __ldg(low + kb * 4 + t) : make_uint4(0, 0, 0, 0);
            held_high[i] = inside && high_active ? __ldg(high + kb * 4 + t) : make_uint4(0, 0, 0, 0);
        }
    };
    load_pass(kb_first);
    float early_weight[CACHED];
    coil_gemv_early_weights<CACHED>(early_weight,
            MODE == COIL_GEMV_GATED_NORM || MODE == COIL_GEMV_RESIDUAL_NORM ? norm_weight : nullptr, group_size);
    coil_grid_dependency_wait(COIL_EARLY_NARROW);
    coil_launch_dependents();

    __nv_bfloat16* x = reinterpret_cast<__nv_bfloat16*>(coil_gemv_shared);
    coil_gemv_make_operand<MODE, ROWS, CACHED, ROWS <= 4>(x, scratch, a, a_stride, b, b_stride, norm_weight,
            early_weight, group_size, eps, multiplier, h_out, rows, k);

    float acc[TILES][4];
    bool row_in[TILES];
    const __nv_bfloat16* x_row[TILES];
#pragma unroll
    for (int n = 0; n < TILES; n++) {
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
        row_in[n] = 8 * n + g < rows;
        x_row[n] = x + (size_t) (row_in[n] ? 8 * n + g : 0) * k;
    }
    // The held pass's products: B (x) at the same k, each n-tile's rows from shared memory.
    auto multiply_pass = [&](int pass_first) {
#pragma unroll
        for (int i = 0; i < HELD; i++) {
            const int kb = pass_first + i;
            if (kb < kb_end) {
                const unsigned int* lo = reinterpret_cast<const unsigned int*>(&held_low[i]);
                const unsigned int* hi = reinterpret_cast<const unsigned int*>(&held_high[i]);
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    const unsigned int fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
#pragma unroll
                    for (int n = 0; n < TILES; n++) {
                        uint2 operand = make_uint2(0, 0);
                        if (row_in[n]) {
                            operand = *reinterpret_cast<const uint2*>(x_row[n] + kb * 32 + 8 * t + 4 * s);
                        }
                        coil_mma_bf16_16x8x16(acc[n], fragment, operand.x, operand.y);
                    }
                }
            }
        }
    };
    multiply_pass(kb_first);
    // Further passes for K beyond one pass (their weights loaded after the wait).
    for (int pass_first = kb_first + HELD; pass_first < kb_end; pass_first += HELD) {
        load_pass(pass_first);
        multiply_pass(pass_first);
    }
    // D of tile n: (weight row g, decode rows 8n + 2t, 8n + 2t + 1) and (weight row g + 8, the same rows).
#pragma unroll
    for (int n = 0; n < TILES; n++) {
        partial[warp][g][8 * n + 2 * t] = acc[n][0];
        partial[warp][g][8 * n + 2 * t + 1] = acc[n][1];
        partial[warp][g + 8][8 * n + 2 * t] = acc[n][2];
        partial[warp][g + 8][8 * n + 2 * t + 1] = acc[n][3];
    }
    __syncthreads();

    // One thread a (block row c, decode row r): the warps' sums in warp order.
    if (threadIdx.x < 16 * COLUMNS) {
        const int c = threadIdx.x / COLUMNS;
        const int r = threadIdx.x % COLUMNS;
        float total = 0.0f;
#pragma unroll
        for (int w = 0; w < COIL_GEMV_WARPS; w++) {
            total += partial[w][c][r];
        }
        if (pair) {
            // Gate rows publish; up rows combine (c ≥ 8 reads its gate row's total from shared memory).
            scratch[c * COLUMNS + r] = total;
        } else if (r < rows && row_active(c)) {
            const int n = first + c;
            out[(size_t) r * columns + n] = total;
            const int channel = n - conv.first;
            if (conv.states != nullptr && segment.index == 0 && channel >= 0 && channel < conv.channels) {
                // Row r's conv of this channel, and its state shifted by the new value
                // (causal_conv1d_update_f32's order: bias, then the history oldest first, then the new value).
                const int history = conv.kernel - 1;
                float* column = conv.states + (size_t) conv.slots[r] * history * conv.channels + channel;
                float sum = conv.bias != nullptr ? conv.bias[channel] : 0.0f;
                for (int j = 0; j < history; j++) {
                    sum = fmaf(conv.weight[channel * conv.kernel + j], column[(size_t) j * conv.channels], sum);
                }
                sum = fmaf(conv.weight[channel * conv.kernel + history], total, sum);
                for (int j = 0; j + 1 < history; j++) {
                    column[(size_t) j * conv.channels] = column[(size_t) (j + 1) * conv.channels];
                }
                if (history > 0) {
                    column[(size_t) (history - 1) * conv.channels] = total;
                }
                conv.out[(size_t) r * conv.channels + channel] = coil_silu(sum);
            }
        }
    }
    if (pair) {
        __syncthreads();
        if (threadIdx.x < 8 * COLUMNS) {
            const int c = threadIdx.x / COLUMNS;
            const int r = threadIdx.x % COLUMNS;
            if (r < rows && first + c < silu_pair) {
                __nv_bfloat16* hidden = reinterpret_cast<__nv_bfloat16*>(out0);
                hidden[(size_t) r * silu_pair + first + c] = __float2bfloat16_rn(
                        coil_silu_product(scratch[c * COLUMNS + r], scratch[(c + 8) * COLUMNS + r]));
            }
        }
    }
}

#define COIL_GEMV_MMA_ENTRY(name, MODE, ROWS, HELD, CACHED)                                                   \
    extern "C" __global__ void __launch_bounds__(COIL_GEMV_WARPS * 32, 2) name(COIL_GEMV_PARAMETERS) {         \
        const CoilGemvConv conv = COIL_GEMV_CONV_OF_PARAMETERS;                                                  \
        coil_gemv_mma<MODE, ROWS, HELD, CACHED>(a, a_stride, b, b_stride, norm_weight, group_size, eps,          \
                multiplier, h_out, conv, silu_pair, rows, k, w0, out0, n0, w1, out1, n1, w2, out2, n2);          \
    }

// ROWS: the most rows (4, 8 or 16: the step's buckets; an n-tile takes 8, the rows beyond read as zero);
// HELD k32 blocks a warp; CACHED normed values a thread and row (rows up to CACHED · 256 normed in
// registers, wider ones by the general operand loop). Up to 4 rows keep their normed values in
// registers between the norm's two passes.
#define COIL_GEMV_MMA_BUCKETS(prefix, MODE, HELD, CACHED)                  \
    COIL_GEMV_MMA_ENTRY(prefix##_mma4, MODE, 4, HELD, CACHED)              \
    COIL_GEMV_MMA_ENTRY(prefix##_mma8, MODE, 8, HELD, CACHED)

COIL_GEMV_MMA_BUCKETS(gemv_f32, COIL_GEMV_F32, 8, 1)
COIL_GEMV_MMA_BUCKETS(gemv_bf16, COIL_GEMV_BF16, 8, 1)
// 9 to 16 rows of operands made before the launch (f32 or bf16 rows), up to 1024 wide: the hidden
// size's products (in_proj, gate and up, q/k/v, lm_head); wider ones stay on cuBLAS there.
COIL_GEMV_MMA_ENTRY(gemv_f32_mma16, COIL_GEMV_F32, 16, 8, 1)
COIL_GEMV_MMA_ENTRY(gemv_bf16_mma16, COIL_GEMV_BF16, 16, 8, 1)
COIL_GEMV_MMA_BUCKETS(gemv_silu, COIL_GEMV_SILU, 8, 1)
COIL_GEMV_MMA_BUCKETS(gemv_gated_norm, COIL_GEMV_GATED_NORM, 6, 6)
COIL_GEMV_MMA_BUCKETS(gemv_residual_norm, COIL_GEMV_RESIDUAL_NORM, 4, 4)
