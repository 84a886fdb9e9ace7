// The routed experts of a mixture-of-experts block (GraniteMoeHybrid's block_sparse_moe, NemotronH's
// moe): the router's choice of each token's experts (routed_experts.cuh: RoutedExpertsRouter), and
// the experts' input and down products over only the experts a token took. An expert's input is
// gated (silu(gate) · up, its gate and up rows stacked, Granite) or not (relu(up)², NemotronH).
// Notation: rows = tokens of the step, E experts, k experts a token (1 <= k <= E <= 256, k <= 16),
// H the hidden size, F an expert's width, R = 2F (gated) or F the input rows of an expert.
//
// The products take a warp an output (one output j of one (row, slot) pair), the warp's lanes
// striding over the row of weights 16 bytes at a time where the row's width and the pointers allow
// it (scalar loads otherwise), f32 accumulation, and a warp sum. Every launch's shape depends on
// its arguments only and the expert ids are read on the device, so the three launches can be
// captured into a graph. These per-pair products suit few pairs (decode); for many (a prompt's
// chunk) the grouped path (routed_experts_grouped.cu) sorts the pairs by expert and multiplies tiles
// of one expert's pairs (RoutedExpertsKernel.add chooses). A decode step folds the routing into the
// gate/up launch (routed_experts_route_gate_up_*): two launches a block instead of three. With bf16
// weights of the sizes it takes, routed_experts_walk.cu makes those two launches' outputs in one wave
// of blocks, each routing once (RoutedExpertsWalk); these remain for f32 weights and other sizes.
//
// Every kernel here may be launched with programmatic stream serialization (common.cuh): each
// passes coil_grid_dependency_wait before it reads anything an earlier kernel wrote (the logits,
// x, the ids, the tile table, the residual stream) and before any block returns, and lets the next
// kernel start right after. Nothing useful can be loaded before the wait: which expert's weights a
// block reads follows from the previous kernel's output (the logits, the ids or the tile table).
// What the launch gains is the gap between kernels (the block scheduling and the prologue overlap
// the kernel before).
#include "routed_experts_routing.cuh"

// The down product's slots a pass over the weights: their loads in flight together, and few enough
// registers for two blocks a multiprocessor.
#define ROUTED_EXPERTS_SLOT_GROUP 8
// The input product's 16-byte chunks of each weight row a lane loads before its first sum (bf16
// weights; f32 rows take 4, so as not to spill).
#define ROUTED_EXPERTS_INPUT_HELD 6

// Output j of expert `expert`'s input product for one row of x, by the calling warp (every lane
// returns it): GATED silu(g) · u, g = Σ_c x_row[c] · W[e·2F + j, c], u = Σ_c x_row[c] · W[e·2F + F + j, c];
// else relu(u)², u = Σ_c x_row[c] · W[e·F + j, c]. vector: H a whole number of 16-byte chunks of
// weights and both pointers 16-byte aligned.
template <bool BF16, bool GATED>
static __device__ __forceinline__ float routed_experts_input_output(const float* __restrict__ x_row, int hidden,
        const void* __restrict__ input, int expert, int width, int j, bool vector) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    const int lane = threadIdx.x & 31;
    const size_t row_bytes = (size_t) hidden * (BF16 ? 2 : 4);
    // GATED: the gate row, the up row F rows further; else the up row.
    const unsigned char* gate_row = static_cast<const unsigned char*>(input)
            + ((size_t) expert * (GATED ? 2 : 1) * width + j) * row_bytes;
    const unsigned char* up_row = GATED ? gate_row + (size_t) width * row_bytes : gate_row;
    float gate = 0.0f;
    float up = 0.0f;
    if (vector) {
        // Passes of HELD chunks a lane: the pass's weight loads all issued before
        // its first sum (one trip to memory a pass; a row of 1536 bf16 is one pass), the sums then in
        // chunk order as a chunk-by-chunk loop takes them.
        constexpr int HELD = BF16 ? ROUTED_EXPERTS_INPUT_HELD : 4;
        const int chunks = hidden / ELEMENTS;
        for (int pass = lane; pass < chunks; pass += 32 * HELD) {
            uint4 gates[HELD];
            uint4 ups[HELD];
#pragma unroll
            for (int t = 0; t < HELD; t++) {
                const int c = pass + 32 * t;
                if (c < chunks) {
                    if (GATED) {
                        gates[t] = __ldg(reinterpret_cast<const uint4*>(gate_row) + c);
                    }
                    ups[t] = __ldg(reinterpret_cast<const uint4*>(up_row) + c);
                }
            }
#pragma unroll
            for (int t = 0; t < HELD; t++) {
                const int c = pass + 32 * t;
                if (c < chunks) {
                    float gate_values[8];
                    float up_values[8];
                    float xs[8];
                    if (GATED) {
                        routed_experts_widen_chunk<BF16>(gates[t], gate_values);
                    }
                    routed_experts_widen_chunk<BF16>(ups[t], up_values);
                    routed_experts_operand_chunk<BF16>(x_row, c, xs);
#pragma unroll
                    for (int i = 0; i < ELEMENTS; i++) {
                        if (GATED) {
                            gate = fmaf(gate_values[i], xs[i], gate);
                        }
                        up = fmaf(up_values[i], xs[i], up);
                    }
                }
            }
        }
    } else {
#pragma unroll 4
        for (int c = lane; c < hidden; c += 32) {
            const float value = x_row[c];
            if (GATED) {
                gate = fmaf(routed_experts_weight<BF16>(gate_row, c), value, gate);
            }
            up = fmaf(routed_experts_weight<BF16>(up_row, c), value, up);
        }
    }
    up = coil_warp_sum(up);
    if (!GATED) {
        return coil_squared_relu(up);
    }
    gate = coil_warp_sum(gate);
    return coil_silu_product(gate, up);
}

// routed_experts_input_output with `gated` chosen at run time (one branch a launch).
template <bool BF16>
static __device__ __forceinline__ float routed_experts_input_value(const float* __restrict__ x_row, int hidden,
        const void* __restrict__ input, int expert, int width, int j, bool vector, bool gated) {
    return gated ? routed_experts_input_output<BF16, true>(x_row, hidden, input, expert, width, j, vector)
                 : routed_experts_input_output<BF16, false>(x_row, hidden, input, expert, width, j, vector);
}

// out[r, s, j] = output j of expert e = ids[r, s]'s input product on row r of x
// (routed_experts_input_output: silu(gate) · up when gated, else relu(up)²).
//   x: (rows, H) f32;  input: (E · R, H) bf16 or f32;  ids: (rows, k) int32;  out: (rows, k, F) f32.
// An id outside [0, E) gives NaN outputs rather than a read out of bounds (route's ids are in range).
// Grid: (ceil(F / ROUTED_EXPERTS_WARPS), min(rows · k, 65535)), striding over the (row, slot) pairs;
// a warp an output j of a pair, its gate and up rows side by side.
template <bool BF16>
static __device__ __forceinline__ void routed_experts_gate_up(const float* __restrict__ x, int rows, int hidden,
        const void* __restrict__ input, int gated, int experts, int width, const int* __restrict__ ids,
        int per_token, float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    COIL_AFTER_PREVIOUS_KERNEL(); // the ids and x
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    if (j >= width) {
        return;
    }
    // Rows of whole chunks from 16-byte aligned starts (x's rows then start aligned too).
    const bool vector = hidden % ELEMENTS == 0 && coil_aligned16(input) && coil_aligned16(x);
    const int pairs = rows * per_token;
    for (int pair = blockIdx.y; pair < pairs; pair += gridDim.y) {
        const int expert = ids[pair];
        float* target = out + (size_t) pair * width + j;
        if (expert < 0 || expert >= experts) {
            if (lane == 0) {
                *target = __int_as_float(0x7fc00000);
            }
            continue;
        }
        const float value = routed_experts_input_value<BF16>(x + (size_t) (pair / per_token) * hidden, hidden,
                input, expert, width, j, vector, gated != 0);
        if (lane == 0) {
            *target = value;
        }
    }
}

// ids[r, :] and weights[r, :] = each row's k chosen experts (ascending, so that the down product adds
// a token's experts in expert order) and their weights, by routed_experts_route_row.
//   logits: (rows, E) f32;  bias: (E) f32 (a sigmoid router) or null;  ids: (rows, k) int32;
//   weights: (rows, k) f32.
// Grid: any number of blocks of ROUTED_EXPERTS_THREADS, striding over the rows: a block a row.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route(
        const float* __restrict__ logits, int rows, int experts, int per_token, int scoring,
        const float* __restrict__ bias, int groups, int groups_chosen, float scale, int* __restrict__ ids,
        float* __restrict__ weights) {
    __shared__ RoutedExpertsRowRouting routing;
    COIL_AFTER_PREVIOUS_KERNEL(); // the logits are the router product's output
    const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        routed_experts_route_row(logits, row, experts, per_token, router, true, ids, weights, routing);
    }
}

// routed_experts_route then routed_experts_gate_up in one launch: each block routes the rows of its
// pairs itself from the logits (a few hundred cycles of shared memory for E = 64, where a launch of
// its own costs microseconds), and the block of x-index 0 that holds a row's slot 0 stores the row's
// ids and weights for the down product. The outputs are gate_up's on route's ids, bit for bit.
//   logits: (rows, E) f32;  bias: (E) f32 or null;  x: (rows, H) f32;  input: (E · R, H) bf16 or f32;
//   ids: (rows, k) int32 and weights: (rows, k) f32, written;  out: (rows, k, F) f32.
// Grid: (ceil(F / ROUTED_EXPERTS_WARPS), min(rows · k, 65535)) as gate_up's, striding over the pairs;
// E <= ROUTED_EXPERTS_THREADS (a thread an expert).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_route_gate_up(const float* __restrict__ logits, int experts,
        int per_token, const RoutedExpertsRouter& router, const float* __restrict__ x, int rows, int hidden,
        const void* __restrict__ input, int gated, int width, int* __restrict__ ids, float* __restrict__ weights,
        float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    __shared__ RoutedExpertsRowRouting routing;
    // The logits (the router's product before) and x. The wait comes before the next launch may
    // start: routed_experts_route_down_add, launched after this, reads the logits before its own wait.
    COIL_AFTER_PREVIOUS_KERNEL();
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    const bool vector = hidden % ELEMENTS == 0 && coil_aligned16(input) && coil_aligned16(x);
    const int pairs = rows * per_token;
    // A block's pairs lie gridDim.y >= k apart, each in a row of its own: a routing a pair. The
    // block's warps past F take part in the routing's barriers and make no output.
    for (int pair = blockIdx.y; pair < pairs; pair += gridDim.y) {
        const int row = pair / per_token;
        const int slot = pair - row * per_token;
        routed_experts_route_row(logits, row, experts, per_token, router, blockIdx.x == 0 && slot == 0, ids,
                weights, routing);
        if (j < width) {
            const float value = routed_experts_input_value<BF16>(x + (size_t) row * hidden, hidden, input,
                    routing.ids[slot], width, j, vector, gated != 0);
            if (lane == 0) {
                out[(size_t) pair * width + j] = value;
            }
        }
    }
}

// Output j of one row's experts: moe = Σ over slots s = 0 .. k-1 in order of row_weights[s] ·
// (Σ_c row_values[s, c] · W[row_ids[s] · H + j, c]) in f32, by the calling warp (every lane returns
// it), over up to ROUTED_EXPERTS_SLOT_GROUP slots a pass (a lane's loads of their weight rows in
// flight together), each pass's sums added to moe in slot order. in_range: false when an id is
// outside [0, E) (expert 0's row is read in its place; the caller makes the output NaN).
//   row_values: (k, F) f32;  row_ids, row_weights: (k), global or shared memory.
template <bool BF16>
static __device__ __forceinline__ float routed_experts_down_output(const float* __restrict__ row_values,
        const int* row_ids, const float* row_weights, int per_token, int width, const void* __restrict__ down,
        int experts, int hidden, int j, bool vector, bool& in_range) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    const int lane = threadIdx.x & 31;
    const size_t row_bytes = (size_t) width * (BF16 ? 2 : 4);
    float moe = 0.0f;
    in_range = true;
    for (int first = 0; first < per_token; first += ROUTED_EXPERTS_SLOT_GROUP) {
        const int slots = min(per_token - first, ROUTED_EXPERTS_SLOT_GROUP);
        // Each slot's row of weights: expert row_ids[s]'s row j (expert 0's for an id out of range).
        const unsigned char* weight_rows[ROUTED_EXPERTS_SLOT_GROUP];
        float partial[ROUTED_EXPERTS_SLOT_GROUP];
#pragma unroll
        for (int s = 0; s < ROUTED_EXPERTS_SLOT_GROUP; s++) {
            const int expert = s < slots ? row_ids[first + s] : 0;
            const bool valid = expert >= 0 && expert < experts;
            in_range &= valid;
            weight_rows[s] = static_cast<const unsigned char*>(down)
                    + ((size_t) (valid ? expert : 0) * hidden + j) * row_bytes;
            partial[s] = 0.0f;
        }
        const float* values = row_values + (size_t) first * width;
        if (vector) {
            const int chunks = width / ELEMENTS;
            // Two chunks of each slot's row in flight at once (bf16; f32 rows would spill).
#pragma unroll(BF16 ? 2 : 1)
            for (int c = lane; c < chunks; c += 32) {
#pragma unroll
                for (int s = 0; s < ROUTED_EXPERTS_SLOT_GROUP; s++) {
                    if (s < slots) {
                        float ws[8];
                        float vs[8];
                        routed_experts_weight_chunk<BF16>(weight_rows[s], c, ws);
                        routed_experts_operand_chunk<BF16>(values + (size_t) s * width, c, vs);
#pragma unroll
                        for (int i = 0; i < ELEMENTS; i++) {
                            partial[s] = fmaf(ws[i], vs[i], partial[s]);
                        }
                    }
                }
            }
        } else {
            for (int c = lane; c < width; c += 32) {
#pragma unroll
                for (int s = 0; s < ROUTED_EXPERTS_SLOT_GROUP; s++) {
                    if (s < slots) {
                        partial[s] = fmaf(routed_experts_weight<BF16>(weight_rows[s], c),
                                values[(size_t) s * width + c], partial[s]);
                    }
                }
            }
        }
#pragma unroll
        for (int s = 0; s < ROUTED_EXPERTS_SLOT_GROUP; s++) {
            if (s < slots) {
                const float product = coil_warp_sum(partial[s]);
                moe = __fadd_rn(moe, __fmul_rn(row_weights[first + s], product));
            }
        }
    }
    return moe;
}

// out[r, j] = out[r, j] + moe, moe = Σ over slots s = 0 .. k-1 in order of weights[r, s] ·
// (Σ_c hidden_values[r, s, c] · W[ids[r, s] · H + j, c]) (routed_experts_down_output), moe in f32 on
// its own and added to out once.
//   hidden_values: (rows, k, F) f32 (gate_up's output);  down: (E · H, F) bf16 or f32;
//   ids: (rows, k) int32;  weights: (rows, k) f32;  out: (rows, H) f32, read and written.
// An id outside [0, E) makes the output NaN rather than reading out of bounds.
// Grid: (ceil(H / ROUTED_EXPERTS_WARPS), min(rows, 65535)), striding over the rows; a warp an output
// j of a row.
template <bool BF16>
static __device__ __forceinline__ void routed_experts_down_add(const float* __restrict__ hidden_values, int rows,
        int per_token, int width, const void* __restrict__ down, int experts, int hidden, const int* __restrict__ ids,
        const float* __restrict__ weights, float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    COIL_AFTER_PREVIOUS_KERNEL(); // the activations, ids and weights, and the residual stream
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    if (j >= hidden) {
        return;
    }
    const bool vector = width % ELEMENTS == 0 && coil_aligned16(down) && coil_aligned16(hidden_values);
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        bool in_range;
        const float moe = routed_experts_down_output<BF16>(hidden_values + (size_t) r * per_token * width,
                ids + (size_t) r * per_token, weights + (size_t) r * per_token, per_token, width, down, experts,
                hidden, j, vector, in_range);
        if ((threadIdx.x & 31) == 0) {
            float* target = out + (size_t) r * hidden + j;
            *target = in_range ? __fadd_rn(*target, moe) : __int_as_float(0x7fc00000);
        }
    }
}

// routed_experts_down_add with each row's ids and weights routed by the block itself from the
// router's scores (routed_experts_route_row, as the gate/up launch before it routed them: the same
// ids and weights bit for bit, so the same outputs), and the block's expert rows asked into L2
// before its wait: a decode step's down product then waits only for the activations, while the rows
// it reads (a few MB scattered by the routing) are on their way. Reading the scores before the wait
// is sound only because the kernel just before is routed_experts_route_gate_up, which lets this one
// start only after its own wait, when the scores' writer is done: RoutedExpertsKernel launches the
// two only as that pair.
//   logits: (rows, E) f32;  the rest as routed_experts_down_add's.
// Grid: (ceil(H / ROUTED_EXPERTS_WARPS), min(rows, 65535)), striding over the rows.
template <bool BF16>
static __device__ __forceinline__ void routed_experts_route_down_add(const float* __restrict__ logits,
        const RoutedExpertsRouter& router, const float* __restrict__ hidden_values, int rows, int per_token,
        int width, const void* __restrict__ down, int experts, int hidden, float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    __shared__ RoutedExpertsRowRouting routing;
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    const size_t row_bytes = (size_t) width * (BF16 ? 2 : 4);
    const bool vector = width % ELEMENTS == 0 && coil_aligned16(down) && coil_aligned16(hidden_values);
    bool waited = false;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        // Every thread takes part in the routing's barriers, warps past H too.
        routed_experts_route_row(logits, r, experts, per_token, router, false, nullptr, nullptr, routing);
        if (!waited) {
            // The first row's weight rows into L2: a lane a 128-byte line, over the k rows of output j.
            if (j < hidden) {
                const int lines = (int) ((row_bytes + 127) / 128);
                for (int index = lane; index < per_token * lines; index += 32) {
                    const int slot = index / lines;
                    const int expert = routing.ids[slot];
                    if (expert >= 0 && expert < experts) {
                        coil_prefetch_l2(static_cast<const unsigned char*>(down)
                                + ((size_t) expert * hidden + j) * row_bytes + (size_t) (index - slot * lines) * 128);
                    }
                }
            }
            COIL_AFTER_PREVIOUS_KERNEL(); // the activations and the residual stream
            waited = true;
        }
        if (j < hidden) {
            bool in_range;
            const float moe = routed_experts_down_output<BF16>(hidden_values + (size_t) r * per_token * width,
                    routing.ids, routing.weights, per_token, width, down, experts, hidden, j, vector, in_range);
            if (lane == 0) {
                float* target = out + (size_t) r * hidden + j;
                *target = in_range ? __fadd_rn(*target, moe) : __int_as_float(0x7fc00000);
            }
        }
    }
    if (!waited) {
        COIL_AFTER_PREVIOUS_KERNEL();
    }
}

// gated: 1 for silu(gate) · up over stacked gate and up rows, 0 for relu(up)².
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_gate_up_bf16(
        const float* __restrict__ x, int rows, int hidden, const __nv_bfloat16* __restrict__ input, int gated,
        int experts, int width, const int* __restrict__ ids, int per_token, float* __restrict__ out) {
    routed_experts_gate_up<true>(x, rows, hidden, input, gated, experts, width, ids, per_token, out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_gate_up_f32(
        const float* __restrict__ x, int rows, int hidden, const float* __restrict__ input, int gated, int experts,
        int width, const int* __restrict__ ids, int per_token, float* __restrict__ out) {
    routed_experts_gate_up<false>(x, rows, hidden, input, gated, experts, width, ids, per_token, out);
}

// The router's fields as routed_experts_route takes them; gated as gate_up takes it.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route_gate_up_bf16(
        const float* __restrict__ logits, int experts, int per_token, int scoring, const float* __restrict__ bias,
        int groups, int groups_chosen, float scale, const float* __restrict__ x, int rows, int hidden,
        const __nv_bfloat16* __restrict__ input, int gated, int width, int* __restrict__ ids,
        float* __restrict__ weights, float* __restrict__ out) {
    const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};
    routed_experts_route_gate_up<true>(logits, experts, per_token, router, x, rows, hidden, input, gated, width, ids,
            weights, out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route_gate_up_f32(
        const float* __restrict__ logits, int experts, int per_token, int scoring, const float* __restrict__ bias,
        int groups, int groups_chosen, float scale, const float* __restrict__ x, int rows, int hidden,
        const float* __restrict__ input, int gated, int width, int* __restrict__ ids, float* __restrict__ weights,
        float* __restrict__ out) {
    const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};
    routed_experts_route_gate_up<false>(logits, experts, per_token, router, x, rows, hidden, input, gated, width,
            ids, weights, out);
}

// The router's fields as routed_experts_route takes them.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_route_down_add_bf16(
        const float* __restrict__ logits, int scoring, const float* __restrict__ bias, int groups, int groups_chosen,
        float scale, const float* __restrict__ hidden_values, int rows, int per_token, int width,
        const __nv_bfloat16* __restrict__ down, int experts, int hidden, float* __restrict__ out) {
    const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};
    routed_experts_route_down_add<true>(logits, router, hidden_values, rows, per_token, width, down, experts, hidden,
            out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_route_down_add_f32(
        const float* __restrict__ logits, int scoring, const float* __restrict__ bias, int groups, int groups_chosen,
        float scale, const float* __restrict__ hidden_values, int rows, int per_token, int width,
        const float* __restrict__ down, int experts, int hidden, float* __restrict__ out) {
    const RoutedExpertsRouter router{scoring, bias, groups, groups_chosen, scale};
    routed_experts_route_down_add<false>(logits, router, hidden_values, rows, per_token, width, down, experts, hidden,
            out);
}

// At least two blocks a multiprocessor (at most 128 registers): a decode step's ceil(H / 8) blocks fit the GPU at once.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_down_add_bf16(
        const float* __restrict__ hidden_values, int rows, int per_token, int width,
        const __nv_bfloat16* __restrict__ down, int experts, int hidden, const int* __restrict__ ids,
        const float* __restrict__ weights, float* __restrict__ out) {
    routed_experts_down_add<true>(hidden_values, rows, per_token, width, down, experts, hidden, ids, weights, out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS, 2) routed_experts_down_add_f32(
        const float* __restrict__ hidden_values, int rows, int per_token, int width, const float* __restrict__ down,
        int experts, int hidden, const int* __restrict__ ids, const float* __restrict__ weights,
        float* __restrict__ out) {
    routed_experts_down_add<false>(hidden_values, rows, per_token, width, down, experts, hidden, ids, weights, out);
}
