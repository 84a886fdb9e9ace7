// The linear layer for a few rows (decode): out[r, n] = Σ_k x[r, k] · W[n, k], W bf16 (N, K)
// row-major, f32 accumulation, for rows ≤ 8. A decode step of a small model is a chain of such
// products, each reading a few MB of weights once: cuBLAS spends several times the bytes' time on
// the wide ones. Here a warp owns one output column (two for tall matrices, and from 4 rows up, so
// that each operand load from shared memory serves two weight rows) and holds its weights in
// registers (16-byte loads, all issued at once), so a launch keeps the whole matrix in flight.
//
// The operand x is built in shared memory by the block, as bf16, from one of:
//   COIL_GEMV_F32           x = a (f32 rows of a_stride floats)
//   COIL_GEMV_BF16          x = a (bf16 rows of a_stride)
//   COIL_GEMV_SILU          x = silu(a) · b (the MLP's gate and up, f32 rows of a_stride / b_stride):
//                           silu_multiply_f32 fused into the down projection
//   COIL_GEMV_GATED_NORM    x = weight · (a · silu(b)) / rms over each group of group_size channels
//                           (Mamba-2's gated RMSNorm, a = y, b = z): gated_rms_norm_f32 fused into out_proj;
//                           b null: a is y · silu(z) already (the state update made it)
//   COIL_GEMV_RESIDUAL_NORM v = a + b · multiplier (b may be null: v = a); x = weight · v / rms(v)
//                           over the row: a block's residual update and the next block's pre-norm
//                           (residual_rms_norm_f32) fused into that block's first products. The
//                           first block of the grid writes v to h_out (a buffer other than a: the
//                           other blocks are still reading a).
// Each is computed as the separate kernel computes it, with the same 256 threads striding over a
// row or group and the same block sums, and rounded to bf16 as the separate kernel's bf16 output
// is: x is bit for bit the operand the unfused launches would give cuBLAS, so a decode row's
// product here equals its product in a larger batch up to the order of the f32 sums.
//
// The first product can end in Mamba-2's causal conv update (the decode step's in_proj): each
// output column n in [conv_first, conv_first + channels) is a conv channel c = n − conv_first of
// the new token; the warp that computed it also computes convolved[r, c] = silu(bias[c] +
// Σ_j conv_weight[c, j] · state_j + conv_weight[c, last] · out[r, n]) and shifts that channel's
// state (slot slots[r]) by the new value, exactly as causal_conv1d_update_f32 does. Each channel
// belongs to one warp, so no other thread touches its state. conv_states null: no conv.
//
// Up to three products over the same x run in one launch (q, k and v): segment s has weights ws,
// outputs outs (rows, ns) and ns columns; the first blocks cover segment 0, the next 1, then 2.
//
// The MLP's stacked gate and up projection can end in silu(gate) · up (silu_pair = the MLP's
// width I > 0, one product of 2·I rows: gate rows [0, I), up rows [I, 2I)): each warp computes
// gate_j and up_j (its two columns, j and I + j, so only the entries of two columns a warp take it)
// and writes bf16(silu(gate_j) · up_j) to out0 as bf16 rows of I, exactly what the down
// projection's COIL_GEMV_SILU operand makes of the two f32 outputs. The down projection then reads
// a plain bf16 operand. A column's sum runs in the same order whichever columns its warp holds, so
// gate_j and up_j are the unfused launch's outputs bit for bit.
//
// A one-row q/k/v launch can end in RoPE and the K/V cache write (rope.destinations given; heads
// of head_dim columns, a multiple of 8, cached unpadded): rope_kv_write's work, so that launch goes.
// In q's and k's segments a block's warps take the pairs of columns RoPE turns together (column m
// and m + rotary_dim / 2 of a head, for m < rotary_dim / 2) as neighbours, so a pair meets in the
// block's shared memory after the sums; each warp turns its value with the turn computed before the
// wait (coil_rope_turn, coil_rope_pair's arithmetic) and stores q or k; k's and v's warps also store
// their value into the cache row destinations[0]. The same values as the launch and rope_kv_write,
// bit for bit.
//
// The weights do not depend on earlier kernels: they are loaded before griddepcontrol.wait, so a
// launch with programmatic stream serialization streams its weights while the kernel before it
// finishes (on sm_90; elsewhere, and without that launch attribute, the wait is a no-op).
//
// Grid: Σ_s ceil(ns / (8 · columns per warp)), or ceil(I / 8) with silu_pair; block: 256 threads (8 warps);
// dynamic shared memory: 2 · rows · k bytes.
#include "gemv_operand.cuh"

// The column of segment `index` a one-column warp takes: RoPE's pairs as neighbours in q and k.
static __device__ __forceinline__ int coil_gemv_rope_column(int column, int index, const CoilGemvRope& rope) {
    if (rope.destinations == nullptr || index > 1) {
        return column;
    }
    const int in_head = column % rope.head_dim;
    if (in_head >= rope.rotary_dim) {
        return column;
    }
    const int pair = in_head >> 1;
    return column - in_head + ((in_head & 1) != 0 ? pair + rope.rotary_dim / 2 : pair);
}

template <int MODE, int ROWS, int COLUMNS, int CACHED, int HELD>
static __device__ __forceinline__ void coil_gemv(COIL_GEMV_BODY_PARAMETERS, const CoilGemvRope rope) {
    // RoPE's epilogue: one-row, one-column-a-warp launches over a pre-norm (q/k/v) only.
    constexpr bool ROPE_CAPABLE = MODE == COIL_GEMV_RESIDUAL_NORM && ROWS == 1 && COLUMNS == 1;
    // COLUMNS: output columns per warp (a row of weights each).
    constexpr int CHUNKS = HELD / COLUMNS;               // chunks per lane and column per pass
    constexpr int PER_BLOCK = COIL_GEMV_WARPS * COLUMNS; // output columns per block
    extern __shared__ __align__(16) unsigned char coil_gemv_shared[];
    __shared__ float scratch[32 * ROWS];
    const int lane = threadIdx.x & 31;

    // silu_pair: a warp's two columns are gate_j and up_j (one output j a warp).
    const bool pair = COLUMNS == 2 && silu_pair > 0;

    // This block's segment and its first column there.
    const int blocks0 = pair ? (silu_pair + COIL_GEMV_WARPS - 1) / COIL_GEMV_WARPS : (n0 + PER_BLOCK - 1) / PER_BLOCK;
    const int blocks1 = (n1 + PER_BLOCK - 1) / PER_BLOCK;
    const CoilGemvSegment segment = coil_gemv_segment(blocks0, blocks1, w0, out0, n0, w1, out1, n1, w2, out2, n2);
    const int block = segment.block;
    const __nv_bfloat16* weights = segment.weights;
    float* out = segment.out;
    const int columns = segment.columns;
    const int warp_index = block * COIL_GEMV_WARPS + (threadIdx.x >> 5);
    const bool roping = ROPE_CAPABLE && rope.destinations != nullptr;
    const int first_column = pair ? warp_index
            : roping ? coil_gemv_rope_column(warp_index, segment.index, rope) : warp_index * COLUMNS;
    // The warp's place in its head (before the pairing) and its pair's turn, for RoPE.
    const int in_head = roping ? warp_index % rope.head_dim : 0;
    const bool turns = roping && segment.index < 2 && in_head < rope.rotary_dim;
    double sine = 0.0;
    double cosine = 1.0;
    if (turns) {
        coil_rope_turn((float) rope.positions[0], in_head >> 1, rope.rotary_dim, rope.theta, sine, cosine);
    }
    const int chunks = k / 8;
    const uint4* rows_of[COLUMNS];
    bool active[COLUMNS];
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
        const int weight_row = pair ? first_column + o * silu_pair : first_column + o;
        active[o] = pair ? first_column < silu_pair : first_column + o < columns;
        rows_of[o] = reinterpret_cast<const uint4*>(weights + (size_t) (active[o] ? weight_row : 0) * k);
    }

    uint4 held[COLUMNS][CHUNKS];
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = lane + 32 * i;
            held[o][i] = active[o] && c < chunks ? __ldg(rows_of[o] + c) : make_uint4(0, 0, 0, 0);
        }
    }
    // The norm's weights of the first group are constant: read with the matrix, before the wait.
    float early_weight[CACHED];
    coil_gemv_early_weights<CACHED>(early_weight,
            MODE == COIL_GEMV_GATED_NORM || MODE == COIL_GEMV_RESIDUAL_NORM ? norm_weight : nullptr, group_size);
    // The conv channels' history terms (bias + Σ_j weight · state_j) do not depend on the earlier
    // kernels either: lane o · ROWS + r computes them for row r of the warp's column o before the wait,
    // and the same lane finishes that conv after the products, so that a warp's columns run side by side.
    // (The state was last written by this launch's twin in an earlier step, never by the kernel just before.)
    // The terms (history values, then the sum and the last weight) and the state column (of the row's
    // slot: read again after the products, the slot cost the launch a trip to memory at its end) are
    // in shared memory: registers are what lets the lean twins' blocks sit three to a multiprocessor.
    static_assert(ROWS * COLUMNS <= 32, "a lane a (column, row) of the warp's conv channels");
    constexpr int CONV_SUM = COIL_GEMV_CONV_HISTORY;
    constexpr int CONV_LAST_WEIGHT = COIL_GEMV_CONV_HISTORY + 1;
    __shared__ float conv_terms_of[COIL_GEMV_WARPS][COLUMNS][ROWS][COIL_GEMV_CONV_HISTORY + 2];
    float (&conv_terms)[COLUMNS][ROWS][COIL_GEMV_CONV_HISTORY + 2] = conv_terms_of[threadIdx.x >> 5];
    __shared__ float* conv_column_of[COIL_GEMV_WARPS][COLUMNS][ROWS];
    float* (&conv_column)[COLUMNS][ROWS] = conv_column_of[threadIdx.x >> 5];
    int conv_of_lane = -1;  // lane o · ROWS + r: column o's conv channel, when it has one and r is a row
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
        const int channel = first_column + o - conv.first;
        const bool conv_column_here = conv.states != nullptr && blockIdx.x < blocks0 && active[o] && channel >= 0
                && channel < conv.channels;
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            if (conv_column_here && lane == o * ROWS + r && r < rows) {
                conv_of_lane = channel;
            }
        }
    }
    if (conv_of_lane >= 0) {
        const int o = lane / ROWS;
        const int r = lane - o * ROWS;
        const int channel = conv_of_lane;
        const int history = conv.kernel - 1;
        float* column = conv.states + (size_t) conv.slots[r] * history * conv.channels + channel;
        conv_column[o][r] = column;
        float sum = conv.bias != nullptr ? conv.bias[channel] : 0.0f;
        for (int j = 0; j < history; j++) {
            const float value = column[(size_t) j * conv.channels];
            if (j < COIL_GEMV_CONV_HISTORY) {
                conv_terms[o][r][j] = value;
            }
            sum = fmaf(conv.weight[channel * conv.kernel + j], value, sum);
        }
        conv_terms[o][r][CONV_SUM] = sum;
        conv_terms[o][r][CONV_LAST_WEIGHT] = conv.weight[channel * conv.kernel + history];
    }
    coil_grid_dependency_wait(ROWS == 1 && COLUMNS == 2 ? COIL_EARLY_WIDE : COIL_EARLY_NARROW);
    coil_launch_dependents();

    __nv_bfloat16* x = reinterpret_cast<__nv_bfloat16*>(coil_gemv_shared);
    coil_gemv_make_operand<MODE, ROWS, CACHED>(x, scratch, a, a_stride, b, b_stride, norm_weight, early_weight,
            group_size, eps, multiplier, h_out, rows, k);

    float acc[COLUMNS][ROWS];
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            acc[o][r] = 0.0f;
        }
    }
    const int per_pass = 32 * CHUNKS;
    for (int first = 0; first < chunks; first += per_pass) {
        if (first > 0) {
#pragma unroll
            for (int o = 0; o < COLUMNS; o++) {
#pragma unroll
                for (int i = 0; i < CHUNKS; i++) {
                    const int c = first + lane + 32 * i;
                    held[o][i] = active[o] && c < chunks ? __ldg(rows_of[o] + c) : make_uint4(0, 0, 0, 0);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            const int c = first + lane + 32 * i;
            if (c < chunks) {
                float w[COLUMNS][8];
#pragma unroll
                for (int o = 0; o < COLUMNS; o++) {
                    coil_bf16x8_to_float(held[o][i], w[o]);
                }
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
                    if (r < rows) {
                        float xs[8];
                        coil_bf16x8_to_float(*reinterpret_cast<const uint4*>(x + r * k + 8 * c), xs);
#pragma unroll
                        for (int o = 0; o < COLUMNS; o++) {
                            float sum = acc[o][r];
#pragma unroll
                            for (int j = 0; j < 8; j++) {
                                sum = fmaf(w[o][j], xs[j], sum);
                            }
                            acc[o][r] = sum;
                        }
                    }
                }
            }
        }
    }
    if (pair) {
        __nv_bfloat16* hidden = reinterpret_cast<__nv_bfloat16*>(out0);
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const float gate = coil_warp_sum(acc[0][r]);
            const float up = coil_warp_sum(acc[COLUMNS - 1][r]);
            if (active[0] && lane == 0 && r < rows) {
                hidden[(size_t) r * silu_pair + first_column] = __float2bfloat16_rn(coil_silu_product(gate, up));
            }
        }
        return;
    }
    if (ROPE_CAPABLE && roping) {
        __shared__ float pair_values[COIL_GEMV_WARPS];
        const int warp = threadIdx.x >> 5;
        const float total = coil_warp_sum(acc[0][0]);
        if (lane == 0) {
            pair_values[warp] = total;
        }
        __syncthreads();
        float value = total;
        if (turns) {
            // Neighbouring warps hold the pair (in_head odd: the second of it).
            const bool second = (in_head & 1) != 0;
            const float partner = pair_values[warp ^ 1];
            value = coil_rope_turned(second ? partner : total, second ? total : partner, sine, cosine, second);
        }
        if (active[0] && lane == 0) {
            out[first_column] = value;
            if (segment.index > 0) {
                void* cache = segment.index == 1 ? rope.key_cache : rope.value_cache;
                coil_store(rope.cache_bf16 ? nullptr : static_cast<float*>(cache),
                        rope.cache_bf16 ? static_cast<__nv_bfloat16*>(cache) : nullptr,
                        (size_t) rope.destinations[0] * columns + first_column, value);
            }
        }
        return;
    }
    // The butterfly leaves every sum in every lane: lane o · ROWS + r keeps column o's of row r for its conv.
    float conv_total = 0.0f;
#pragma unroll
    for (int o = 0; o < COLUMNS; o++) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const float total = coil_warp_sum(acc[o][r]);
            if (active[o] && lane == 0 && r < rows) {
                out[(size_t) r * columns + first_column + o] = total;
            }
            if (lane == o * ROWS + r) {
                conv_total = total;
            }
        }
    }
    if (conv_of_lane >= 0) {
        // Row r's conv of this channel, and its state shifted by the new value.
        const int o = lane / ROWS;
        const int r = lane - o * ROWS;
        const int history = conv.kernel - 1;
        float* column = conv_column[o][r];
        const float sum = fmaf(conv_terms[o][r][CONV_LAST_WEIGHT], conv_total, conv_terms[o][r][CONV_SUM]);
        for (int j = 0; j + 1 < history; j++) {
            column[(size_t) j * conv.channels] = j + 1 < COIL_GEMV_CONV_HISTORY
                    ? conv_terms[o][r][j + 1] : column[(size_t) (j + 1) * conv.channels];
        }
        if (history > 0) {
            column[(size_t) (history - 1) * conv.channels] = conv_total;
        }
        conv.out[(size_t) r * conv.channels + conv_of_lane] = coil_silu(sum);
    }
}

#define COIL_GEMV_ENTRY(name, MODE, ROWS, COLUMNS) \
    COIL_GEMV_ENTRY_BOUNDED(name, MODE, ROWS, COLUMNS, 1, COIL_GEMV_CACHED, COIL_GEMV_HELD)

// MIN_BLOCKS: blocks a multiprocessor must hold at once (the compiler keeps the registers to that).
// CACHED: normed operand values a thread keeps in registers (rows up to CACHED · 256 wide).
// HELD: 16-byte weight chunks a lane holds a pass, over its columns (more passes for longer rows).
#define COIL_GEMV_ENTRY_BOUNDED(name, MODE, ROWS, COLUMNS, MIN_BLOCKS, CACHED, HELD)                                \
    extern "C" __global__ void __launch_bounds__(COIL_GEMV_WARPS * 32, MIN_BLOCKS) name(COIL_GEMV_PARAMETERS) {  \
        const CoilGemvConv conv = COIL_GEMV_CONV_OF_PARAMETERS;                                                  \
        const CoilGemvRope rope = COIL_GEMV_ROPE_OF_PARAMETERS;                                                  \
        coil_gemv<MODE, ROWS, COLUMNS, CACHED, HELD>(a, a_stride, b, b_stride, norm_weight, group_size, eps,     \
                multiplier, h_out, conv, silu_pair, rows, k, w0, out0, n0, w1, out1, n1, w2, out2, n2, rope);    \
    }

// Rows buckets 1, 2, 4 and 8: a launch for r rows takes the smallest bucket ≥ r. One row has a
// second entry with two columns a warp, for tall matrices: half the blocks, so that they fit the
// GPU at once (a second wave of blocks would redo the operand's prologue after the first). Its lean
// twin keeps to 80 registers without spills (three blocks a multiprocessor: 4 normed values and 3
// weight chunks a column a thread, the conv's terms in shared memory; GemvKernel gives it rows of up
// to 768), so that it can be resident beside the launch before it (KernelModule.GEMV_OVERLAP_PROPERTY).
// Two and four rows have lean twins too, for the same tall products: their default kernels hold
// 128-138 registers, one block a multiprocessor, so 210-256 blocks took two waves. The default
// kernel of two rows is held to two blocks a multiprocessor (128 registers, no spills). Two and four
// rows of the narrower products (out_proj, down, o_proj, q/k/v) take one column a warp, as one row
// does, so that a lane's weights for rows up to 2048 wide are all loaded before the wait. One row's
// one-column kernel is held to two blocks a multiprocessor as well: RoPE's turn in the q/k/v epilogue
// would take its residual-norm twin past 128 registers.
#define COIL_GEMV_BUCKETS(prefix, MODE)                  \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows1, MODE, 1, 1, 2, COIL_GEMV_CACHED, COIL_GEMV_HELD) \
    COIL_GEMV_ENTRY(prefix##_rows1_wide, MODE, 1, 2)     \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows1_wide_lean, MODE, 1, 2, 3, COIL_GEMV_CACHED_LEAN, COIL_GEMV_HELD_LEAN) \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows2, MODE, 2, 2, 2, COIL_GEMV_CACHED, COIL_GEMV_HELD) \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows2_lean, MODE, 2, 2, 3, COIL_GEMV_CACHED_LEAN, COIL_GEMV_HELD_LEAN) \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows2_narrow, MODE, 2, 1, 2, COIL_GEMV_CACHED, COIL_GEMV_HELD) \
    COIL_GEMV_ENTRY(prefix##_rows4, MODE, 4, 2)          \
    COIL_GEMV_ENTRY_BOUNDED(prefix##_rows4_lean, MODE, 4, 2, 3, COIL_GEMV_CACHED_LEAN, COIL_GEMV_HELD_LEAN) \
    COIL_GEMV_ENTRY(prefix##_rows4_narrow, MODE, 4, 1)   \
    COIL_GEMV_ENTRY(prefix##_rows8, MODE, 8, 2)

COIL_GEMV_BUCKETS(gemv_f32, COIL_GEMV_F32)
COIL_GEMV_BUCKETS(gemv_bf16, COIL_GEMV_BF16)
COIL_GEMV_BUCKETS(gemv_silu, COIL_GEMV_SILU)
COIL_GEMV_BUCKETS(gemv_gated_norm, COIL_GEMV_GATED_NORM)
COIL_GEMV_BUCKETS(gemv_residual_norm, COIL_GEMV_RESIDUAL_NORM)
