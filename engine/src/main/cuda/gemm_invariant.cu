// The linear layer of --batch-invariant: out[t, n] = Σ_k x[t, k] · w[n, k] (x f32 or in w's 16-bit
// type, w row-major (n, k), out f32 row-major (t, n)), with every output summed in one order that
// depends on k alone: not on how many rows the launch has, where a row sits among them, or which
// kernel of this file took it. So a request's products round alike whatever shares its step.
//
// 16-bit weights (tensor cores, mma.sync m16n8k16, f32 accumulation; x rounded to w's type to
// nearest even, as convert.cu rounds it): k is cut into segments of 256; within a segment the
// products are accumulated 32 k at a time (two m16n8k16 steps, the first taking k ≡ 0..3 mod 8 of
// the 32, the second k ≡ 4..7, so that a lane's 16-byte load of 8 consecutive k feeds both steps),
// from zero; the segments' sums are then added left to right to a total that starts at zero.
// Past K the operands are zeros. Four kernels keep that order:
//   - gemm_invariant_rows16_*: decode steps of fewer than 32 rows (or K past 3072), 16 rows a
//     block row, one warp a (segment, 8 outputs):
//     the weights stream straight from global memory into fragments (the first segment's asked for
//     before the launch waits for the kernel before it), the segments' sums meet in shared memory
//     and are added in order. So the grid is wide even for the few outputs of out_proj or down.
//   - gemm_invariant_rows_wide_*: decode steps of 32 to 128 rows, the same warps but each reading
//     its rows' x once for 32 outputs, 64 outputs a block.
//   - gemm_invariant_pipelined_*: prompt steps whose operand is already in w's type (rows of
//     whole 16-byte chunks): tiles of 128 rows × 128 outputs, windows copied into a ring in shared
//     memory three ahead of the one multiplied, the segment sums folded into the total as they end.
//   - gemm_invariant_tiles_*: any rows and operands, tiles of 64 rows × 128 outputs staged through
//     registers into shared memory one window ahead: the rest (f32 operands, odd widths).
// f32 weights (CUDA cores): gemm_invariant_f32, one fmaf at a time for k = 0, 1, … in every output.
#include "common.cuh"

namespace coil_invariant {

constexpr int SEGMENT = 256;       // k a segment (eight windows of 32)
constexpr int WINDOW = 32;         // k a window: two m16n8k16 steps
constexpr int MOST_SEGMENTS = 96;  // the rows16 kernel's shared partial sums (48 KB): K up to 24576

// The 16-bit type's conversions and its mma: TYPE, its pair type, the pair's rounding conversion
// and the type's name in PTX.
template <typename W>
struct Half;

#define COIL_INVARIANT_HALF(TYPE, PAIR, CONVERT_PAIR, PTX_TYPE)                                                 \
    template <>                                                                                                 \
    struct Half<TYPE> {                                                                                         \
        static __device__ __forceinline__ unsigned int pack(float low, float high) {                            \
            PAIR pair = CONVERT_PAIR(low, high);                                                                \
            return *reinterpret_cast<unsigned int*>(&pair);                                                     \
        }                                                                                                       \
        static __device__ __forceinline__ void mma(float (&c)[4], unsigned int a0, unsigned int a1,             \
                unsigned int a2, unsigned int a3, unsigned int b0, unsigned int b1) {                           \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." PTX_TYPE "." PTX_TYPE ".f32 "                 \
                         "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                      \
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                       \
                         : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));                              \
        }                                                                                                       \
    };

COIL_INVARIANT_HALF(__nv_bfloat16, __nv_bfloat162, __floats2bfloat162_rn, "bf16")
COIL_INVARIANT_HALF(__half, __half2, __floats2half2_rn, "f16")
#undef COIL_INVARIANT_HALF

// Eight consecutive 16-bit values w[row][k .. k+7] (zeros past cols or for a row past rows).
// vector: the rows are 16-byte aligned (cols a multiple of 8 and an aligned base).
template <typename W>
static __device__ __forceinline__ uint4 load_weights8(const W* w, int row, int rows, int k, int cols, bool vector) {
    if (row >= rows) {
        return make_uint4(0u, 0u, 0u, 0u);
    }
    const W* at = w + (size_t) row * cols + k;
    if (vector && k + 8 <= cols) {
        return __ldg(reinterpret_cast<const uint4*>(at));
    }
    unsigned short bits[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        bits[j] = k + j < cols ? reinterpret_cast<const unsigned short*>(at)[j] : (unsigned short) 0;
    }
    return make_uint4(bits[0] | (unsigned int) bits[1] << 16, bits[2] | (unsigned int) bits[3] << 16,
            bits[4] | (unsigned int) bits[5] << 16, bits[6] | (unsigned int) bits[7] << 16);
}

// Eight consecutive operand values x[row][k .. k+7] in W, packed in pairs as the fragments take them
// (zeros past cols or for a row past rows). X is float (rounded here) or W (as stored).
template <typename W, typename X>
static __device__ __forceinline__ uint4 load_operand8(const X* x, int row, int rows, int k, int cols, bool vector) {
    if constexpr (sizeof(X) == 2) {
        return load_weights8<W>(reinterpret_cast<const W*>(x), row, rows, k, cols, vector);
    } else {
        float v[8];
        if (row >= rows) {
#pragma unroll
            for (int j = 0; j < 8; j++) {
                v[j] = 0.0f;
            }
        } else {
            const float* at = x + (size_t) row * cols + k;
            if (vector && k + 8 <= cols) {
                const float4 first = *reinterpret_cast<const float4*>(at);
                const float4 second = *reinterpret_cast<const float4*>(at + 4);
                v[0] = first.x, v[1] = first.y, v[2] = first.z, v[3] = first.w;
                v[4] = second.x, v[5] = second.y, v[6] = second.z, v[7] = second.w;
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    v[j] = k + j < cols ? at[j] : 0.0f;
                }
            }
        }
        return make_uint4(Half<W>::pack(v[0], v[1]), Half<W>::pack(v[2], v[3]), Half<W>::pack(v[4], v[5]),
                Half<W>::pack(v[6], v[7]));
    }
}

// One window's two mma steps on a lane's operands: a_low, a_high: rows g and g + 8, k = 8t .. 8t+7 of
// the window; b: output g, the same k. Step one takes k 8t .. 8t+3 (the fragment's k 2t, 2t+1, 2t+8,
// 2t+9), step two k 8t+4 .. 8t+7.
template <typename W>
static __device__ __forceinline__ void window_mma(float (&c)[4], uint4 a_low, uint4 a_high, uint4 b) {
    Half<W>::mma(c, a_low.x, a_high.x, a_low.y, a_high.y, b.x, b.y);
    Half<W>::mma(c, a_low.z, a_high.z, a_low.w, a_high.w, b.z, b.w);
}

// Whether x and w may be read 16 bytes at a time: cols a multiple of 8 (of 4 for f32 x, twice that
// for the two loads) and aligned bases.
template <typename W, typename X>
static __device__ __forceinline__ bool vectorizable(const X* x, const W* w, int cols) {
    return cols % 8 == 0 && coil_aligned16(x) && coil_aligned16(w);
}

// A lane's weights of one segment: weight row `output` (zeros where !valid), k = 8t .. 8t+7 of each
// window (zeros past the segment's end).
template <typename W>
static __device__ __forceinline__ void load_segment(uint4 (&b)[SEGMENT / WINDOW], const W* w, int output, bool valid,
        int segment, int cols, int t, bool vector) {
    const int begin = segment * SEGMENT;
    const int end = min(cols, begin + SEGMENT);
#pragma unroll
    for (int i = 0; i < SEGMENT / WINDOW; i++) {
        const int k = begin + i * WINDOW + 8 * t;
        b[i] = valid && k < end ? load_weights8<W>(w, output, output + 1, k, cols, vector) : make_uint4(0u, 0u, 0u, 0u);
    }
}

// What a decode step's product may end in (the rows16 kernel only), each made exactly as the launch
// that otherwise follows the product makes it, so that a row's bits do not depend on which way its
// step went:
//   - conv_states non-null: Mamba-2's conv update of in_proj's xBC columns [conv_first, conv_first +
//     conv_channels) (causal_conv1d_update_f32): convolved[r, c] and the state of slot conv_slots[r]
//     shifted; the product's outputs are stored as well. As in that kernel, the state's terms are
//     summed before the launch waits for the kernel before it, which must not write the states or
//     the slots.
//   - pair_out non-null: w stacks gate [pair_width, K] over up [pair_width, K]; block x takes gate
//     rows 4x .. 4x + 3 and the same up rows and stores bf16 silu(gate) · up to pair_out [rows,
//     pair_width] (silu_multiply_f32 into a bf16 output) instead of the products.
struct Rows16End {
    const float* conv_weight;
    const float* conv_bias;
    int conv_kernel;
    float* conv_states;
    const int* conv_slots;
    float* convolved;
    int conv_first;
    int conv_channels;
    __nv_bfloat16* pair_out;
    int pair_width;
};

// Rows 16 · blockIdx.y onwards, up to 16. Grid: (ceil(N / 8), ceil(rows / 16)) blocks of `warps`
// warps (4 to 16; N / 2 / 4 blocks for a gate and up pair); warp i takes segments i, i + warps, …,
// of the block's 8 outputs. Shared: MOST_SEGMENTS × 16 × 8 partial sums. Launched programmatically:
// the weights are read before the wait (no kernel writes them), x, out and the conv's state after it.
template <typename W, typename X>
static __device__ void rows16(const X* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out, const Rows16End& end_with) {
    __shared__ float partial[MOST_SEGMENTS][16][8];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const bool pair = end_with.pair_out != nullptr;
    const int first_output = blockIdx.x * 8;
    // Weight row of lane group g: output first_output + g, or of a pair gate (g < 4) or up (g ≥ 4)
    // row 4 · blockIdx.x + g % 4.
    const int pair_column = 4 * blockIdx.x + (g & 3);
    const int output = pair ? (g < 4 ? pair_column : end_with.pair_width + pair_column) : first_output + g;
    const bool valid = pair ? pair_column < end_with.pair_width : output < outputs;
    const int segments = (cols + SEGMENT - 1) / SEGMENT;
    const bool vector = vectorizable(x, w, cols);
    const int first_row = blockIdx.y * 16;
    x += (size_t) first_row * cols;
    rows = min(16, rows - first_row);
    // The first segment's weights (up to eight 16-byte loads in flight a lane) and, where the product
    // ends in the conv, the history terms of the (row, column) this thread finishes (thread i < 128:
    // row i / 8, column i % 8, as below), while the kernel before finishes.
    uint4 b[SEGMENT / WINDOW];
    if (warp < segments) {
        load_segment<W>(b, w, output, valid, warp, cols, t, vector);
    }
    const int conv_channel = first_output + (int) threadIdx.x % 8 - end_with.conv_first;
    const bool conv_here = end_with.conv_states != nullptr && !pair && threadIdx.x < 16 * 8
            && (int) threadIdx.x / 8 < rows && first_output + (int) threadIdx.x % 8 < outputs && conv_channel >= 0
            && conv_channel < end_with.conv_channels;
    const long long conv_index = (long long) (first_row + (int) threadIdx.x / 8) * end_with.conv_channels + conv_channel;
    const float conv_history = conv_here ? coil_conv_history_sum(end_with.conv_weight, end_with.conv_bias,
            end_with.conv_kernel, end_with.conv_states, end_with.conv_slots, end_with.conv_channels, conv_index) : 0.0f;
    coil_grid_dependency_wait();
    coil_launch_dependents();
    for (int s = warp; s < segments; s += warps) {
        const int begin = s * SEGMENT;
        const int end = min(cols, begin + SEGMENT);
        if (s != warp) {
            load_segment<W>(b, w, output, valid, s, cols, t, vector);
        }
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int i = 0; i < SEGMENT / WINDOW; i++) {
            const int window = begin + i * WINDOW;
            if (window < end) {
                const int k = window + 8 * t;
                const uint4 a_low = load_operand8<W, X>(x, g, rows, k, cols, vector);
                const uint4 a_high = load_operand8<W, X>(x, g + 8, rows, k, cols, vector);
                window_mma<W>(c, a_low, a_high, b[i]);
            }
        }
        partial[s][g][2 * t] = c[0];
        partial[s][g][2 * t + 1] = c[1];
        partial[s][g + 8][2 * t] = c[2];
        partial[s][g + 8][2 * t + 1] = c[3];
    }
    __syncthreads();
    // Output o of row r: its segments' sums in order, from zero.
    auto total_of = [&](int r, int o) {
        float total = 0.0f;
        for (int s = 0; s < segments; s++) {
            total += partial[s][r][o];
        }
        return total;
    };
    if (pair) {
        for (int i = threadIdx.x; i < 16 * 4; i += blockDim.x) {
            const int row = i / 4;
            const int column = 4 * blockIdx.x + i % 4;
            if (row < rows && column < end_with.pair_width) {
                const float gate = total_of(row, i % 4);
                const float up = total_of(row, 4 + i % 4);
                end_with.pair_out[(size_t) (first_row + row) * end_with.pair_width + column] =
                        __float2bfloat16_rn(coil_silu_product(gate, up));
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < 16 * 8; i += blockDim.x) {
        const int row = i / 8;
        const int column = first_output + i % 8;
        if (row < rows && column < outputs) {
            const float total = total_of(row, i % 8);
            out[(size_t) (first_row + row) * outputs + column] = total;
            if (conv_here) {  // i is this thread's (row, column): blocks have at least 128 threads
                end_with.convolved[conv_index] = coil_conv_update_column(end_with.conv_weight, end_with.conv_kernel,
                        end_with.conv_states, end_with.conv_slots[first_row + row], end_with.conv_channels,
                        conv_channel, total, conv_history);
            }
        }
    }
}

constexpr int WIDE_OUTPUTS = 64;        // outputs a block of rows_wide: two sets of four groups of 8
constexpr int WIDE_GROUPS = 4;          // groups of 8 outputs a warp multiplies with one segment's x
constexpr int MOST_WIDE_SEGMENTS = 12;  // rows_wide's shared partial sums (48 KB): K up to 3072

// Decode steps of several rows of 16: the same fragments and order as rows16, but a block takes 64
// outputs and a warp (segment s, set h) reads its 16 rows' x of segment s once for four groups of 8
// outputs (32 + 8 outputs of x and weights in registers), so x, which every block reads, is read an
// eighth as often. Grid: (ceil(N / 64), ceil(rows / 16)) blocks of `warps` warps (4 to 16); warp i
// takes tasks i, i + warps, … of segments × 2. Shared: MOST_WIDE_SEGMENTS × 16 × 64 partial sums.
// Launched programmatically: the weights of the warp's first group are read before the wait.
template <typename W, typename X>
static __device__ void rows_wide(const X* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out) {
    __shared__ float partial[MOST_WIDE_SEGMENTS][16][WIDE_OUTPUTS];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int first_output = blockIdx.x * WIDE_OUTPUTS;
    const int segments = (cols + SEGMENT - 1) / SEGMENT;
    const int tasks = segments * 2;
    const bool vector = vectorizable(x, w, cols);
    const int first_row = blockIdx.y * 16;
    x += (size_t) first_row * cols;
    rows = min(16, rows - first_row);
    // Task i: segment i / 2, outputs first_output + 32 (i % 2) + 8j + g for group j.
    auto output_of = [&](int task, int group) { return first_output + 32 * (task % 2) + 8 * group + g; };
    uint4 b[SEGMENT / WINDOW];
    if (warp < tasks) {
        const int output = output_of(warp, 0);
        load_segment<W>(b, w, output, output < outputs, warp / 2, cols, t, vector);
    }
    coil_grid_dependency_wait();
    coil_launch_dependents();
    for (int task = warp; task < tasks; task += warps) {
        const int segment = task / 2;
        const int begin = segment * SEGMENT;
        const int end = min(cols, begin + SEGMENT);
        uint4 a_low[SEGMENT / WINDOW];
        uint4 a_high[SEGMENT / WINDOW];
#pragma unroll
        for (int i = 0; i < SEGMENT / WINDOW; i++) {
            const int k = begin + i * WINDOW + 8 * t;
            a_low[i] = k < end ? load_operand8<W, X>(x, g, rows, k, cols, vector) : make_uint4(0u, 0u, 0u, 0u);
            a_high[i] = k < end ? load_operand8<W, X>(x, g + 8, rows, k, cols, vector) : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll 1
        for (int group = 0; group < WIDE_GROUPS; group++) {
            if (task != warp || group != 0) {
                const int output = output_of(task, group);
                load_segment<W>(b, w, output, output < outputs, segment, cols, t, vector);
            }
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int i = 0; i < SEGMENT / WINDOW; i++) {
                if (begin + i * WINDOW < end) {
                    window_mma<W>(c, a_low[i], a_high[i], b[i]);
                }
            }
            const int column = 32 * (task % 2) + 8 * group + 2 * t;
            partial[segment][g][column] = c[0];
            partial[segment][g][column + 1] = c[1];
            partial[segment][g + 8][column] = c[2];
            partial[segment][g + 8][column + 1] = c[3];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 16 * WIDE_OUTPUTS; i += blockDim.x) {
        const int row = i / WIDE_OUTPUTS;
        const int column = first_output + i % WIDE_OUTPUTS;
        if (row < rows && column < outputs) {
            float total = 0.0f;
            for (int s = 0; s < segments; s++) {
                total += partial[s][row][i % WIDE_OUTPUTS];
            }
            out[(size_t) (first_row + row) * outputs + column] = total;
        }
    }
}

// A warp's sums: I × J pieces of 16 rows × 8 outputs, four values a lane (the m16n8 layout: rows g
// and g + 8, outputs 2t and 2t + 1).
template <int I, int J>
static __device__ __forceinline__ void zero_sums(float (&sums)[I][J][4]) {
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                sums[i][j][e] = 0.0f;
            }
        }
    }
}

// A segment ends: its sums join the total, in the segments' order, and start again from zero.
template <int I, int J>
static __device__ __forceinline__ void fold_segment(float (&total)[I][J][4], float (&segment)[I][J][4]) {
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                total[i][j][e] += segment[i][j][e];
                segment[i][j][e] = 0.0f;
            }
        }
    }
}

// Stores a warp's totals: piece (i, j) at rows first_row + 16i (+ g, + g + 8), outputs first_output +
// 8j + 2t (and + 1), two at a time where out's rows allow it; nothing past rows or outputs.
template <int I, int J>
static __device__ __forceinline__ void store_sums(float* __restrict__ out, int rows, int outputs,
        const float (&total)[I][J][4], int first_row, int first_output, int g, int t) {
    const bool pairs = outputs % 2 == 0 && (reinterpret_cast<uintptr_t>(out) & 7) == 0;
#pragma unroll
    for (int i = 0; i < I; i++) {
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int column = first_output + 8 * j + 2 * t;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int row = first_row + 16 * i + g + 8 * half;
                if (row >= rows) {
                    continue;
                }
                float* at = out + (size_t) row * outputs + column;
                const float first = total[i][j][2 * half];
                const float second = total[i][j][2 * half + 1];
                if (pairs && column + 1 < outputs) {
                    *reinterpret_cast<float2*>(at) = make_float2(first, second);
                } else {
                    if (column < outputs) {
                        at[0] = first;
                    }
                    if (column + 1 < outputs) {
                        at[1] = second;
                    }
                }
            }
        }
    }
}

constexpr int TILE_ROWS = 64;
constexpr int TILE_OUTPUTS = 128;
constexpr int TILE_THREADS = 256;  // 8 warps: 2 along the rows × 4 along the outputs, 32 × 32 each

// Any rows. Grid: (ceil(N / 128), ceil(rows / 64)); 256 threads. Each window's x and w tiles are read
// into registers while the window before is multiplied, then stored to the other half of shared
// memory (rows of 32 values, 64 bytes: a quarter-warp's 16-byte fragment loads fall on distinct banks).
template <typename W, typename X>
static __device__ void tiles(const X* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out) {
    __shared__ __align__(16) W x_tile[2][TILE_ROWS][WINDOW];
    __shared__ __align__(16) W w_tile[2][TILE_OUTPUTS][WINDOW];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int warp_row = (warp / 4) * 32;
    const int warp_output = (warp % 4) * 32;
    const int first_row = blockIdx.y * TILE_ROWS;
    const int first_output = blockIdx.x * TILE_OUTPUTS;
    const bool vector = vectorizable(x, w, cols);
    const int windows = (cols + WINDOW - 1) / WINDOW;
    coil_grid_dependency_wait();
    coil_launch_dependents();

    // A thread's staged chunks: x row threadIdx.x / 4 (one), w rows threadIdx.x / 4 and + 64 (two);
    // chunk threadIdx.x % 4 (k 8 · chunk .. + 7 of the window).
    const int stage_row = threadIdx.x / 4;
    const int stage_chunk = threadIdx.x % 4;
    uint4 staged_x;
    uint4 staged_w[2];
    auto load = [&](int window) {
        const int k = window * WINDOW + 8 * stage_chunk;
        staged_x = load_operand8<W, X>(x, first_row + stage_row, rows, k, cols, vector);
        staged_w[0] = load_weights8<W>(w, first_output + stage_row, outputs, k, cols, vector);
        staged_w[1] = load_weights8<W>(w, first_output + stage_row + 64, outputs, k, cols, vector);
    };
    auto store = [&](int half) {
        *reinterpret_cast<uint4*>(&x_tile[half][stage_row][8 * stage_chunk]) = staged_x;
        *reinterpret_cast<uint4*>(&w_tile[half][stage_row][8 * stage_chunk]) = staged_w[0];
        *reinterpret_cast<uint4*>(&w_tile[half][stage_row + 64][8 * stage_chunk]) = staged_w[1];
    };

    float total[2][4][4];
    float c[2][4][4];
    zero_sums(total);
    zero_sums(c);
    load(0);
    store(0);
    __syncthreads();
    for (int window = 0; window < windows; window++) {
        const int half = window & 1;
        if (window + 1 < windows) {
            load(window + 1);
        }
        uint4 a_low[2];
        uint4 a_high[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            a_low[i] = *reinterpret_cast<const uint4*>(&x_tile[half][warp_row + 16 * i + g][8 * t]);
            a_high[i] = *reinterpret_cast<const uint4*>(&x_tile[half][warp_row + 16 * i + g + 8][8 * t]);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint4 b = *reinterpret_cast<const uint4*>(&w_tile[half][warp_output + 8 * j + g][8 * t]);
#pragma unroll
            for (int i = 0; i < 2; i++) {
                window_mma<W>(c[i][j], a_low[i], a_high[i], b);
            }
        }
        if ((window + 1) % (SEGMENT / WINDOW) == 0 || window + 1 == windows) {
            fold_segment(total, c);
        }
        if (window + 1 < windows) {
            store(half ^ 1);
        }
        __syncthreads();
    }
    store_sums(out, rows, outputs, total, first_row + warp_row, first_output + warp_output, g, t);
}

constexpr int PIPELINE_ROWS = 128;
constexpr int PIPELINE_OUTPUTS = 128;
constexpr int PIPELINE_THREADS = 256;  // 8 warps: 2 along the rows × 4 along the outputs, 64 × 32 each
constexpr int PIPELINE_STAGES = 4;     // windows in shared memory: the one multiplied and three coming
constexpr int PIPELINE_SHARED_BYTES = PIPELINE_STAGES * (PIPELINE_ROWS + PIPELINE_OUTPUTS) * WINDOW * 2;

// Prompt steps with a 16-bit operand: x in w's type, both with rows of whole 16-byte chunks at
// 16-byte aligned addresses (cols a multiple of 8; the caller checks). Grid: (ceil(N / 128),
// ceil(rows / 128)); 256 threads; PIPELINE_SHARED_BYTES of dynamic shared memory, a ring of
// PIPELINE_STAGES windows (rows of 32 values, 64 bytes, as in tiles) that cp.async fills
// PIPELINE_STAGES - 1 windows ahead of the one multiplied, so the loads of three windows are in
// flight while the tensor cores work; the first windows' weights are asked for before the launch
// waits for the kernel before it. A warp multiplies 64 rows × 32 outputs a window, the same
// fragments and the same order as the other kernels.
template <typename W>
static __device__ void pipelined(const W* __restrict__ x, int rows, int cols, const W* __restrict__ w, int outputs,
        float* __restrict__ out) {
    extern __shared__ __align__(16) unsigned char pipeline_shared[];
    W (*x_stage)[PIPELINE_ROWS][WINDOW] = reinterpret_cast<W (*)[PIPELINE_ROWS][WINDOW]>(pipeline_shared);
    W (*w_stage)[PIPELINE_OUTPUTS][WINDOW] = reinterpret_cast<W (*)[PIPELINE_OUTPUTS][WINDOW]>(
            pipeline_shared + (size_t) PIPELINE_STAGES * PIPELINE_ROWS * WINDOW * sizeof(W));
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int warp_row = (warp / 4) * 64;
    const int warp_output = (warp % 4) * 32;
    const int first_row = blockIdx.y * PIPELINE_ROWS;
    const int first_output = blockIdx.x * PIPELINE_OUTPUTS;
    const int windows = (cols + WINDOW - 1) / WINDOW;

    // A thread's copies of a window: rows copy_row and copy_row + 64 of each tile, 16-byte chunk
    // copy_chunk (k 8 · copy_chunk .. + 7 of the window). Past the matrices' edges: zeros.
    const int copy_row = threadIdx.x / 4;
    const int copy_chunk = threadIdx.x % 4;
    // Rows [first, first + 128) of a row-major (count, cols) matrix m, window `window`, into `tile`.
    auto copy_window = [&](W (*tile)[WINDOW], const W* m, int first, int count, int window) {
        const int k = window * WINDOW + 8 * copy_chunk;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = first + copy_row + 64 * half;
            const bool valid = row < count && k < cols;
            coil_copy16(&tile[copy_row + 64 * half][8 * copy_chunk], valid ? m + (size_t) row * cols + k : m, valid);
        }
    };
    auto copy_weights = [&](int window) {
        copy_window(w_stage[window % PIPELINE_STAGES], w, first_output, outputs, window);
    };
    auto copy_operand = [&](int window) {
        copy_window(x_stage[window % PIPELINE_STAGES], x, first_row, rows, window);
    };

    // The first PIPELINE_STAGES - 1 windows, one copy group each (the weights all join the first).
#pragma unroll
    for (int window = 0; window < PIPELINE_STAGES - 1; window++) {
        if (window < windows) {
            copy_weights(window);
        }
    }
    coil_grid_dependency_wait();
    coil_launch_dependents();
#pragma unroll
    for (int window = 0; window < PIPELINE_STAGES - 1; window++) {
        if (window < windows) {
            copy_operand(window);
        }
        coil_copy_commit();
    }

    float total[4][4][4];
    float c[4][4][4];
    zero_sums(total);
    zero_sums(c);
    for (int window = 0; window < windows; window++) {
        // This window's group has landed (a group is committed every window, empty or not), and
        // every warp is done with the window before, whose stage the copies below refill.
        coil_copy_wait<PIPELINE_STAGES - 2>();
        __syncthreads();
        const int ahead = window + PIPELINE_STAGES - 1;
        if (ahead < windows) {
            copy_weights(ahead);
            copy_operand(ahead);
        }
        coil_copy_commit();
        const int stage = window % PIPELINE_STAGES;
        uint4 a_low[4];
        uint4 a_high[4];
        uint4 b[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            a_low[i] = *reinterpret_cast<const uint4*>(&x_stage[stage][warp_row + 16 * i + g][8 * t]);
            a_high[i] = *reinterpret_cast<const uint4*>(&x_stage[stage][warp_row + 16 * i + g + 8][8 * t]);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            b[j] = *reinterpret_cast<const uint4*>(&w_stage[stage][warp_output + 8 * j + g][8 * t]);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                window_mma<W>(c[i][j], a_low[i], a_high[i], b[j]);
            }
        }
        if ((window + 1) % (SEGMENT / WINDOW) == 0 || window + 1 == windows) {
            fold_segment(total, c);
        }
    }
    coil_copy_wait<0>();
    store_sums(out, rows, outputs, total, first_row + warp_row, first_output + warp_output, g, t);
}

constexpr int F32_TILE = 32;  // rows and outputs a block of gemm_invariant_f32

// f32 weights. Grid: (ceil(N / 32), ceil(rows / 32)); 256 threads, each 4 rows of one output; the
// tiles of x and w pass through shared memory 32 k at a time, each output a chain of fmaf in k order.
static __device__ void f32_tiles(const float* __restrict__ x, int rows, int cols, const float* __restrict__ w,
        int outputs, float* __restrict__ out) {
    __shared__ float x_tile[F32_TILE][F32_TILE + 1];
    __shared__ float w_tile[F32_TILE][F32_TILE + 1];
    const int column = threadIdx.x % F32_TILE;
    const int row_group = threadIdx.x / F32_TILE;  // rows row_group + 8 · i
    const int first_row = blockIdx.y * F32_TILE;
    const int first_output = blockIdx.x * F32_TILE;
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    coil_grid_dependency_wait();
    coil_launch_dependents();
    for (int k0 = 0; k0 < cols; k0 += F32_TILE) {
        for (int i = threadIdx.x; i < F32_TILE * F32_TILE; i += blockDim.x) {
            const int r = i / F32_TILE;
            const int k = k0 + i % F32_TILE;
            x_tile[r][i % F32_TILE] = first_row + r < rows && k < cols ? x[(size_t) (first_row + r) * cols + k] : 0.0f;
            w_tile[r][i % F32_TILE] =
                    first_output + r < outputs && k < cols ? w[(size_t) (first_output + r) * cols + k] : 0.0f;
        }
        __syncthreads();
        const int steps = min(F32_TILE, cols - k0);
        for (int k = 0; k < steps; k++) {
            const float weight = w_tile[column][k];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                sums[i] = fmaf(x_tile[row_group + 8 * i][k], weight, sums[i]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = first_row + row_group + 8 * i;
        if (row < rows && first_output + column < outputs) {
            out[(size_t) row * outputs + first_output + column] = sums[i];
        }
    }
}

}  // namespace coil_invariant

#define COIL_GEMM_INVARIANT(NAME, W, X)                                                                           \
    extern "C" __global__ void __launch_bounds__(512) gemm_invariant_rows16_##NAME(const X* x, int rows,          \
            int cols, const W* w, int outputs, float* out, const float* conv_weight, const float* conv_bias,      \
            int conv_kernel, float* conv_states, const int* conv_slots, float* convolved, int conv_first,         \
            int conv_channels, __nv_bfloat16* pair_out, int pair_width) {                                         \
        const coil_invariant::Rows16End end_with = {conv_weight, conv_bias, conv_kernel, conv_states, conv_slots,  \
                convolved, conv_first, conv_channels, pair_out, pair_width};                                      \
        coil_invariant::rows16<W, X>(x, rows, cols, w, outputs, out, end_with);                                   \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(512) gemm_invariant_rows_wide_##NAME(const X* x, int rows,       \
            int cols, const W* w, int outputs, float* out) {                                                      \
        coil_invariant::rows_wide<W, X>(x, rows, cols, w, outputs, out);                                          \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(coil_invariant::TILE_THREADS) gemm_invariant_tiles_##NAME(        \
            const X* x, int rows, int cols, const W* w, int outputs, float* out) {                                \
        coil_invariant::tiles<W, X>(x, rows, cols, w, outputs, out);                                              \
    }

#define COIL_GEMM_INVARIANT_PIPELINED(NAME, W)                                                                   \
    extern "C" __global__ void __launch_bounds__(coil_invariant::PIPELINE_THREADS, 1)                             \
            gemm_invariant_pipelined_##NAME(const W* x, int rows, int cols, const W* w, int outputs, float* out) { \
        coil_invariant::pipelined<W>(x, rows, cols, w, outputs, out);                                             \
    }

COIL_GEMM_INVARIANT(bf16_xf32, __nv_bfloat16, float)
COIL_GEMM_INVARIANT(bf16_xbf16, __nv_bfloat16, __nv_bfloat16)
COIL_GEMM_INVARIANT(f16_xf32, __half, float)
COIL_GEMM_INVARIANT(f16_xf16, __half, __half)
COIL_GEMM_INVARIANT_PIPELINED(bf16, __nv_bfloat16)
COIL_GEMM_INVARIANT_PIPELINED(f16, __half)

extern "C" __global__ void __launch_bounds__(256) gemm_invariant_f32(const float* x, int rows, int cols,
        const float* w, int outputs, float* out) {
    coil_invariant::f32_tiles(x, rows, cols, w, outputs, out);
}
