// The routed experts of a decode step (few (row, slot) pairs) in one wave of blocks: the per-pair
// products of routed_experts.cu with each block routing its row once and then walking many outputs,
// instead of a block for every 8 outputs each routing again.
//
// Why: at Nemotron-3-Nano's shape (H 2688, F 1856, 128 experts, 6 a token) the gate/up launch of a
// block an 8 outputs is 1392 blocks in three and a half waves, each block routing its row from the
// 128 scores before its first weight load, and the down launch 336 blocks of two a multiprocessor,
// 1.3 waves. Alone, one token's launches took 31 and 54 µs for 60 MB each (1.9 and 1.1 TB/s); with
// the ids given, no routing, 21 and 32 (tools/bench/experts_decode.cu, docs/performance.md). Here
// the routing is one latency of the launch, and a warp's next weight row is in flight while it sums
// the one before.
//
// The arithmetic is routed_experts.cu's, term for term: lane l sums the 16-byte chunks l, l + 32, ...
// of a row in order with fmaf, a warp sum, relu(u)² or silu(g) · u; the down product's dots are
// weighed and added in slot order and then added to out once. So the outputs, ids and weights are
// route_gate_up's and route_down_add's bit for bit (RoutedExpertsKernelTest). These kernels take bf16
// weights whose rows are whole 16-byte chunks, 16-byte aligned, and a row a lane holds in one pass
// (RoutedExpertsWalk checks it: H up to 3072 ungated or 1536 gated, F up to 2048); any other block
// takes routed_experts.cu's, as does a gate/up launch that fits one wave there (granite-4.0-h-tiny's
// shape: its warps' one output each beat the walk's few).
#include "routed_experts_routing.cuh"

// The most outputs a down block takes (its dots in shared memory, a slot each).
#define ROUTED_EXPERTS_WALK_MAX_OUTPUTS 64

// Lane `lane`'s chunks of one weight row into registers: chunk lane + 32 t as held[t], t < HELD.
template <int HELD, bool STREAMING>
static __device__ __forceinline__ void routed_experts_walk_load(const uint4* __restrict__ row, int chunks, int lane,
        uint4 (&held)[HELD]) {
#pragma unroll
    for (int t = 0; t < HELD; t++) {
        const int c = lane + 32 * t;
        if (c < chunks) {
            held[t] = STREAMING ? coil_load_streaming(row + c) : __ldg(row + c);
        }
    }
}

// Σ over lane `lane`'s chunks of weights · operand, in chunk order (the lane's share of a dot).
template <int HELD>
static __device__ __forceinline__ float routed_experts_walk_dot(const uint4 (&held)[HELD],
        const float* __restrict__ operand, int chunks, int lane) {
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < HELD; t++) {
        const int c = lane + 32 * t;
        if (c < chunks) {
            float ws[8];
            float xs[8];
            routed_experts_widen_chunk<true>(held[t], ws);
            routed_experts_operand_chunk<true>(operand, c, xs);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                sum = fmaf(ws[i], xs[i], sum);
            }
        }
    }
    return sum;
}

// The calling warp's outputs j = first, first + stride, ... < F of expert `expert`'s input product
// on x_row into out_pair[j]: GATED silu(g) · u over the gate row e·2F + j and the up row e·2F + F + j,
// else relu(u)² over row e·F + j. Each lane holds its chunks of output j's rows while the loads of
// j + stride's are in flight.
template <bool GATED, int HELD>
static __device__ __forceinline__ void routed_experts_walk_inputs(const float* __restrict__ x_row, int hidden,
        const __nv_bfloat16* __restrict__ input, int expert, int width, int first, int stride,
        float* __restrict__ out_pair) {
    const int lane = threadIdx.x & 31;
    const int chunks = hidden / 8;
    // Rows of `chunks` 16-byte chunks: the expert's gate rows (GATED) or up rows first.
    const uint4* rows = reinterpret_cast<const uint4*>(input) + (size_t) expert * (GATED ? 2 : 1) * width * chunks;
    const size_t up_offset = GATED ? (size_t) width * chunks : 0;
    uint4 gates[HELD]; // unused unless GATED
    uint4 ups[HELD];
    if (first < width) {
        if (GATED) {
            routed_experts_walk_load<HELD, false>(rows + (size_t) first * chunks, chunks, lane, gates);
        }
        routed_experts_walk_load<HELD, false>(rows + up_offset + (size_t) first * chunks, chunks, lane, ups);
    }
    for (int j = first; j < width; j += stride) {
        uint4 gate_row[HELD];
        uint4 up_row[HELD];
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            if (GATED) {
                gate_row[t] = gates[t];
            }
            up_row[t] = ups[t];
        }
        const int next = j + stride;
        if (next < width) {
            if (GATED) {
                routed_experts_walk_load<HELD, false>(rows + (size_t) next * chunks, chunks, lane, gates);
            }
            routed_experts_walk_load<HELD, false>(rows + up_offset + (size_t) next * chunks, chunks, lane, ups);
        }
        float value;
        if (GATED) {
            // routed_experts_input_output sums the gate and the up row's terms in one loop, each on its own.
            const float gate = coil_warp_sum(routed_experts_walk_dot<HELD>(gate_row, x_row, chunks, lane));
            const float up = coil_warp_sum(routed_experts_walk_dot<HELD>(up_row, x_row, chunks, lane));
            value = coil_silu_product(gate, up);
        } else {
            value = coil_squared_relu(coil_warp_sum(routed_experts_walk_dot<HELD>(up_row, x_row, chunks, lane)));
        }
        if (lane == 0) {
            out_pair[j] = value;
        }
    }
}

// routed_experts_route_gate_up's outputs, ids and weights (the same arguments) from a grid of
// (blocks_per_pair, min(pairs, 65535)): a block routes the row of each of its pairs once, and its
// warps walk outputs j = blockIdx.x · 8 + warp, + gridDim.x · 8, .... HELD: the chunks a lane holds of
// a row, at least ceil(H / 256) (a kernel for each: the registers differ).
template <bool GATED, int HELD>
static __device__ __forceinline__ void routed_experts_walk_gate_up(const float* __restrict__ logits, int experts,
        int per_token, const RoutedExpertsRouter& router, const float* __restrict__ x, int rows, int hidden,
        const __nv_bfloat16* __restrict__ input, int width, int* __restrict__ ids, float* __restrict__ weights,
        float* __restrict__ out) {
    __shared__ RoutedExpertsRowRouting routing;
    COIL_AFTER_PREVIOUS_KERNEL(); // the scores and x
    const int first = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    const int stride = gridDim.x * ROUTED_EXPERTS_WARPS;
    const int pairs = rows * per_token;
    for (int pair = blockIdx.y; pair < pairs; pair += gridDim.y) {
        const int row = pair / per_token;
        const int slot = pair - row * per_token;
        routed_experts_route_row(logits, row, experts, per_token, router, blockIdx.x == 0 && slot == 0, ids,
                weights, routing);
        const int expert = routing.ids[slot];
        float* out_pair = out + (size_t) pair * width;
        if (expert < 0 || expert >= experts) {
            if ((threadIdx.x & 31) == 0) {
                for (int j = first; j < width; j += stride) {
                    out_pair[j] = __int_as_float(0x7fc00000);
                }
            }
            continue;
        }
        routed_experts_walk_inputs<GATED, HELD>(x + (size_t) row * hidden, hidden, input, expert, width, first,
                stride, out_pair);
    }
}

// routed_experts_walk_gate_up<GATED, HELD> as routed_experts_walk_{gate_up,up}_bf16_HELD, with
// routed_experts_route_gate_up_bf16's arguments less `gated`.
#define ROUTED_EXPERTS_WALK_GATE_UP(NAME, GATED, HELD)                                                              \
    extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) NAME(const float* __restrict__ logits,   \
            int experts, int per_token, int scoring, const float* __restrict__ bias, int groups, int groups_chosen, \
            float scale, const float* __restrict__ x, int rows, int hidden, const __nv_bfloat16* __restrict__ input, \
            int width, int* __restrict__ ids, float* __restrict__ weights, float* __restrict__ out) {               \
        const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};                             \
        routed_experts_walk_gate_up<GATED, HELD>(logits, experts, per_token, router, x, rows, hidden, input, width, \
                ids, weights, out);                                                                                 \
    }
ROUTED_EXPERTS_WALK_GATE_UP(routed_experts_walk_gate_up_bf16_4, true, 4)
ROUTED_EXPERTS_WALK_GATE_UP(routed_experts_walk_gate_up_bf16_6, true, 6)
ROUTED_EXPERTS_WALK_GATE_UP(routed_experts_walk_up_bf16_4, false, 4)
ROUTED_EXPERTS_WALK_GATE_UP(routed_experts_walk_up_bf16_8, false, 8)
ROUTED_EXPERTS_WALK_GATE_UP(routed_experts_walk_up_bf16_12, false, 12)

// The down dots of one row's block: for items i = warp, warp + 8, ... < count · k, output first + i / k
// and slot i % k, dots[i / k][i % k] = the warp sum of Σ_c values[slot, c] · W[ids[slot] · H + j, c].
// The first item's rows are asked for before `wait` runs (for the block's first row, the kernel's
// wait), the next item's while a warp sums one.
template <int HELD, typename Wait>
static __device__ __forceinline__ void routed_experts_walk_dots(const RoutedExpertsRowRouting& routing,
        const float* __restrict__ row_values, int per_token, int width, const __nv_bfloat16* __restrict__ down,
        int experts, int hidden, int first, int count, Wait wait, float (*dots)[ROUTED_EXPERTS_MAX_PER_TOKEN]) {
    const int lane = threadIdx.x & 31;
    const int chunks = width / 8;
    const int items = count * per_token;
    // Item i's weight row (expert 0's for an id out of range: the output is NaN then).
    auto row_of = [&](int item) {
        const int expert = routing.ids[item % per_token];
        const int valid = expert >= 0 && expert < experts ? expert : 0;
        return reinterpret_cast<const uint4*>(down) + ((size_t) valid * hidden + first + item / per_token) * chunks;
    };
    uint4 held[HELD];
    int item = threadIdx.x >> 5;
    if (item < items) {
        routed_experts_walk_load<HELD, true>(row_of(item), chunks, lane, held);
    }
    wait();
    for (; item < items; item += ROUTED_EXPERTS_WARPS) {
        uint4 current[HELD];
#pragma unroll
        for (int t = 0; t < HELD; t++) {
            current[t] = held[t];
        }
        const int next = item + ROUTED_EXPERTS_WARPS;
        if (next < items) {
            routed_experts_walk_load<HELD, true>(row_of(next), chunks, lane, held);
        }
        const int slot = item % per_token;
        const float dot = coil_warp_sum(
                routed_experts_walk_dot<HELD>(current, row_values + (size_t) slot * width, chunks, lane));
        if (lane == 0) {
            dots[item / per_token][slot] = dot;
        }
    }
}

// routed_experts_route_down_add's outputs from a grid of (ceil(H / outputs), min(rows, 65535)): a
// block takes `outputs` outputs (at most ROUTED_EXPERTS_WALK_MAX_OUTPUTS) and all k slots of its row,
// its warps walking the (output, slot) dots; then thread t < outputs weighs and adds output t's dots
// in slot order and adds that to out. As route_down_add, each block routes its row from the scores
// and, for its first row, asks for its first weight rows before its wait: sound only right after
// routed_experts_walk_gate_up or routed_experts_route_gate_up (they let this kernel start after their
// own wait, when the scores' writer is done; RoutedExpertsKernel launches it only there).
// HELD: the chunks a lane holds of a row, at least ceil(F / 256) (a kernel for each).
template <int HELD>
static __device__ __forceinline__ void routed_experts_walk_down_add(const float* __restrict__ logits,
        const RoutedExpertsRouter& router, const float* __restrict__ hidden_values, int rows, int per_token,
        int width, const __nv_bfloat16* __restrict__ down, int experts, int hidden, int outputs,
        float* __restrict__ out) {
    __shared__ RoutedExpertsRowRouting routing;
    __shared__ float dots[ROUTED_EXPERTS_WALK_MAX_OUTPUTS][ROUTED_EXPERTS_MAX_PER_TOKEN];
    const int first = blockIdx.x * outputs;
    const int count = min(outputs, hidden - first);
    bool waited = false;
    auto wait = [&]() {
        if (!waited) {
            COIL_AFTER_PREVIOUS_KERNEL(); // the activations and the residual stream
            waited = true;
        }
    };
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        // Its first barrier also keeps this row's dots from overwriting the last row's before they are read.
        routed_experts_route_row(logits, r, experts, per_token, router, false, nullptr, nullptr, routing);
        routed_experts_walk_dots<HELD>(routing, hidden_values + (size_t) r * per_token * width, per_token, width,
                down, experts, hidden, first, count, wait, dots);
        __syncthreads();
        if ((int) threadIdx.x < count) {
            float moe = 0.0f;
            bool in_range = true;
            for (int s = 0; s < per_token; s++) {
                const int expert = routing.ids[s];
                in_range &= expert >= 0 && expert < experts;
                moe = __fadd_rn(moe, __fmul_rn(routing.weights[s], dots[threadIdx.x][s]));
            }
            float* target = out + (size_t) r * hidden + first + threadIdx.x;
            *target = in_range ? __fadd_rn(*target, moe) : __int_as_float(0x7fc00000);
        }
    }
    wait();
}

// routed_experts_walk_down_add<HELD> as routed_experts_walk_down_add_bf16_HELD, with
// routed_experts_route_down_add_bf16's arguments and `outputs`.
#define ROUTED_EXPERTS_WALK_DOWN_ADD(HELD)                                                                          \
    extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_walk_down_add_bf16_##HELD( \
            const float* __restrict__ logits, int scoring, const float* __restrict__ bias, int groups,             \
            int groups_chosen, float scale, const float* __restrict__ hidden_values, int rows, int per_token,       \
            int width, const __nv_bfloat16* __restrict__ down, int experts, int hidden, int outputs,               \
            float* __restrict__ out) {                                                                              \
        const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};                             \
        routed_experts_walk_down_add<HELD>(logits, router, hidden_values, rows, per_token, width, down, experts,    \
                hidden, outputs, out);                                                                              \
    }
ROUTED_EXPERTS_WALK_DOWN_ADD(2)
ROUTED_EXPERTS_WALK_DOWN_ADD(4)
ROUTED_EXPERTS_WALK_DOWN_ADD(8)
