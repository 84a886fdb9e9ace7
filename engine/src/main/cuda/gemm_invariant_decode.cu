// The batch-invariant product's decode kernels (rows16, rows_wide): see gemm_invariant.cuh for the
// order every kernel keeps.
#include "gemm_invariant.cuh"

namespace coil_invariant {

constexpr int MOST_SEGMENTS = 96;  // the rows16 kernel's shared partial sums (48 KB): K up to 24576

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
    const long long conv_index =
            (long long) (first_row + (int) threadIdx.x / 8) * end_with.conv_channels + conv_channel;
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

}  // namespace coil_invariant

#define COIL_GEMM_INVARIANT_DECODE(NAME, W, X)                                                                    \
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
    }

COIL_GEMM_INVARIANT_DECODE(bf16_xf32, __nv_bfloat16, float)
COIL_GEMM_INVARIANT_DECODE(bf16_xbf16, __nv_bfloat16, __nv_bfloat16)
COIL_GEMM_INVARIANT_DECODE(f16_xf32, __half, float)
COIL_GEMM_INVARIANT_DECODE(f16_xf16, __half, __half)
