// The routed experts of a mixture-of-experts block (GraniteMoeHybrid's block_sparse_moe): the
// router's choice of each token's experts, and the experts' gate/up and down products over only the
// experts a token took. Notation: rows = tokens of the step, E experts, k experts a token
// (1 <= k <= E <= 256, k <= 16), H the hidden size, F an expert's width.
//
// The products take a warp an output (one output j of one (row, slot) pair), the warp's lanes
// striding over the row of weights 16 bytes at a time where the row's width and the pointers allow
// it (scalar loads otherwise), f32 accumulation, and a warp sum. Every launch's shape depends on
// its arguments only and the expert ids are read on the device, so the three launches can be
// captured into a graph. These per-pair products suit few pairs (decode); for many (a prompt's
// chunk) the grouped path (routed_experts_grouped.cu) sorts the pairs by expert and multiplies tiles
// of one expert's pairs (RoutedExpertsKernel.add chooses). A decode step folds the routing into the
// gate/up launch (routed_experts_route_gate_up_*): two launches a block instead of three.
//
// Every kernel here may be launched with programmatic stream serialization (common.cuh): each
// passes coil_grid_dependency_wait before it reads anything an earlier kernel wrote (the logits,
// x, the ids, the tile table, the residual stream) and before any block returns, and lets the next
// kernel start right after. Nothing useful can be loaded before the wait: which expert's weights a
// block reads follows from the previous kernel's output (the logits, the ids or the tile table).
// What the launch gains is the gap between kernels (the block scheduling and the prologue overlap
// the kernel before).
#include "routed_experts.cuh"

#define ROUTED_EXPERTS_PER_LANE (ROUTED_EXPERTS_MAX_EXPERTS / 32)
// The down product's slots a pass over the weights: their loads in flight together, and few enough
// registers for two blocks a multiprocessor.
#define ROUTED_EXPERTS_SLOT_GROUP 8

// ids[r, :] and weights[r, :] = each row's k best experts by logit (a tie goes to the lower expert
// id) and the softmax of their logits in f32 (less their largest, expf, over their sum added in the
// order of the choice, best first), stored by expert id ascending so that the down product adds a
// token's experts in expert order.
//   logits: (rows, E) f32;  ids: (rows, k) int32;  weights: (rows, k) f32.
// A NaN logit counts as -infinity, so that the ids are always experts; such a row's weights are
// what the arithmetic gives (NaN where every chosen logit is infinite).
// Grid: any number of blocks of ROUTED_EXPERTS_THREADS, striding over the rows: a warp a row.
extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route(
        const float* __restrict__ logits, int rows, int experts, int per_token, int* __restrict__ ids,
        float* __restrict__ weights) {
    COIL_AFTER_PREVIOUS_KERNEL(); // the logits are the router product's output
    const int lane = threadIdx.x & 31;
    const int first_row = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    for (int row = first_row; row < rows; row += gridDim.x * ROUTED_EXPERTS_WARPS) {
        // Lane l holds experts l, l + 32, ...: its ids rise, so coil_better keeps its lowest of equal values.
        const float* row_logits = logits + (size_t) row * experts;
        float values[ROUTED_EXPERTS_PER_LANE];
        unsigned int taken = 0; // bit i: expert lane + 32 i chosen already, or beyond E
#pragma unroll
        for (int i = 0; i < ROUTED_EXPERTS_PER_LANE; i++) {
            const int expert = lane + 32 * i;
            const float value = expert < experts ? row_logits[expert] : -INFINITY;
            values[i] = isnan(value) ? -INFINITY : value;
            taken |= expert < experts ? 0u : 1u << i;
        }
        // k rounds of a warp argmax over the experts not yet chosen; lane t keeps the t-th choice.
        // A lane with none left offers (-inf, INT_MAX), which any remaining expert beats (k <= E).
        int chosen_id = 0x7fffffff;
        float chosen_value = -INFINITY;
        for (int t = 0; t < per_token; t++) {
            float best = -INFINITY;
            int best_id = 0x7fffffff;
#pragma unroll
            for (int i = 0; i < ROUTED_EXPERTS_PER_LANE; i++) {
                if ((taken & (1u << i)) == 0) {
                    coil_better(best, best_id, values[i], lane + 32 * i);
                }
            }
            coil_warp_better(best, best_id);
            if ((best_id & 31) == lane) {
                taken |= 1u << (best_id >> 5);
            }
            if (lane == t) {
                chosen_id = best_id;
                chosen_value = best;
            }
        }
        // The softmax of the chosen logits, summed in the order chosen (as the CPU path sums them).
        const float top = __shfl_sync(0xffffffffu, chosen_value, 0);
        const float exponential = lane < per_token ? expf(__fsub_rn(chosen_value, top)) : 0.0f;
        float sum = 0.0f;
        int rank = 0; // how many chosen ids are below this lane's: its place in expert order
        for (int t = 0; t < per_token; t++) {
            sum = __fadd_rn(sum, __shfl_sync(0xffffffffu, exponential, t));
            rank += __shfl_sync(0xffffffffu, chosen_id, t) < chosen_id ? 1 : 0;
        }
        if (lane < per_token) {
            ids[(size_t) row * per_token + rank] = chosen_id;
            weights[(size_t) row * per_token + rank] = __fdiv_rn(exponential, sum);
        }
    }
}

// Weights as f32 (BF16 false) or bf16 (BF16 true), read through the read-only cache.
// One element of a row of weights.
template <bool BF16>
static __device__ __forceinline__ float routed_experts_weight(const void* row, int index) {
    if constexpr (BF16) {
        const unsigned short bits = __ldg(reinterpret_cast<const unsigned short*>(row) + index);
        return __uint_as_float((unsigned int) bits << 16);
    } else {
        return __ldg(reinterpret_cast<const float*>(row) + index);
    }
}

// Elements of a 16-byte chunk of weights: 8 bf16 or 4 f32.
template <bool BF16>
struct RoutedExpertsChunk {
    static constexpr int ELEMENTS = BF16 ? 8 : 4;
};

// Chunk `chunk` of a row of weights (16-byte aligned), widened: values[0 .. ELEMENTS).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_weight_chunk(const void* row, int chunk, float (&values)[8]) {
    const uint4 packed = __ldg(reinterpret_cast<const uint4*>(row) + chunk);
    if constexpr (BF16) {
        const unsigned int words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            values[2 * i] = __uint_as_float(words[i] << 16);
            values[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
    } else {
        values[0] = __uint_as_float(packed.x);
        values[1] = __uint_as_float(packed.y);
        values[2] = __uint_as_float(packed.z);
        values[3] = __uint_as_float(packed.w);
    }
}

// The f32 operand elements that chunk `chunk` of the weights meets (16-byte aligned row).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_operand_chunk(const float* row, int chunk, float (&values)[8]) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    const float4* quads = reinterpret_cast<const float4*>(row + (size_t) chunk * ELEMENTS);
#pragma unroll
    for (int q = 0; q < ELEMENTS / 4; q++) {
        const float4 quad = quads[q];
        values[4 * q] = quad.x;
        values[4 * q + 1] = quad.y;
        values[4 * q + 2] = quad.z;
        values[4 * q + 3] = quad.w;
    }
}

// silu(g) · u for output j of expert `expert` and one row of x: g = Σ_c x_row[c] · W[e·2F + j, c],
// u = Σ_c x_row[c] · W[e·2F + F + j, c], by the calling warp (every lane returns it). vector: H a
// whole number of 16-byte chunks of weights and both pointers 16-byte aligned.
template <bool BF16>
static __device__ __forceinline__ float routed_experts_gate_up_output(const float* __restrict__ x_row, int hidden,
        const void* __restrict__ gate_and_up, int expert, int width, int j, bool vector) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    const int lane = threadIdx.x & 31;
    const size_t row_bytes = (size_t) hidden * (BF16 ? 2 : 4);
    const unsigned char* gate_row = static_cast<const unsigned char*>(gate_and_up)
            + ((size_t) expert * 2 * width + j) * row_bytes;
    const unsigned char* up_row = gate_row + (size_t) width * row_bytes;
    float gate = 0.0f;
    float up = 0.0f;
    if (vector) {
        const int chunks = hidden / ELEMENTS;
#pragma unroll 2
        for (int c = lane; c < chunks; c += 32) {
            float gates[8];
            float ups[8];
            float xs[8];
            routed_experts_weight_chunk<BF16>(gate_row, c, gates);
            routed_experts_weight_chunk<BF16>(up_row, c, ups);
            routed_experts_operand_chunk<BF16>(x_row, c, xs);
#pragma unroll
            for (int i = 0; i < ELEMENTS; i++) {
                gate = fmaf(gates[i], xs[i], gate);
                up = fmaf(ups[i], xs[i], up);
            }
        }
    } else {
#pragma unroll 4
        for (int c = lane; c < hidden; c += 32) {
            const float value = x_row[c];
            gate = fmaf(routed_experts_weight<BF16>(gate_row, c), value, gate);
            up = fmaf(routed_experts_weight<BF16>(up_row, c), value, up);
        }
    }
    gate = coil_warp_sum(gate);
    up = coil_warp_sum(up);
    return coil_silu_product(gate, up);
}

// out[r, s, j] = silu(g) · u, g = Σ_c x[r, c] · W[e·2F + j, c], u = Σ_c x[r, c] · W[e·2F + F + j, c],
// e = ids[r, s]: each token's chosen experts' gate and up rows (stacked per expert, gate first).
//   x: (rows, H) f32;  gate_and_up: (E · 2F, H) bf16 or f32;  ids: (rows, k) int32;  out: (rows, k, F) f32.
// An id outside [0, E) gives NaN outputs rather than a read out of bounds (route's ids are in range).
// Grid: (ceil(F / ROUTED_EXPERTS_WARPS), min(rows · k, 65535)), striding over the (row, slot) pairs;
// a warp an output j of a pair, its gate and up rows side by side.
template <bool BF16>
static __device__ __forceinline__ void routed_experts_gate_up(const float* __restrict__ x, int rows, int hidden,
        const void* __restrict__ gate_and_up, int experts, int width, const int* __restrict__ ids, int per_token,
        float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    COIL_AFTER_PREVIOUS_KERNEL(); // the ids and x
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    if (j >= width) {
        return;
    }
    // Rows of whole chunks from 16-byte aligned starts (x's rows then start aligned too).
    const bool vector = hidden % ELEMENTS == 0 && coil_aligned16(gate_and_up) && coil_aligned16(x);
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
        const float value = routed_experts_gate_up_output<BF16>(x + (size_t) (pair / per_token) * hidden, hidden,
                gate_and_up, expert, width, j, vector);
        if (lane == 0) {
            *target = value;
        }
    }
}

// A block's routing of one row, in shared memory: routed_experts_route's choice and weights, made by
// the block's ROUTED_EXPERTS_THREADS threads at once instead of a warp's k rounds of argmax.
struct RoutedExpertsRowRouting {
    // The row's logits, NaN as -infinity, then -infinity up to a multiple of 4 (read as float4).
    __align__(16) float values[ROUTED_EXPERTS_MAX_EXPERTS];
    float ranked[ROUTED_EXPERTS_MAX_PER_TOKEN];      // the chosen logits, best first
    unsigned int chosen[ROUTED_EXPERTS_WARPS];       // warp w's ballot: lane l's expert 32 w + l chosen
    int ids[ROUTED_EXPERTS_MAX_PER_TOKEN];           // the chosen experts, ascending
};

// routing.ids = row `row`'s k best experts by logit, ascending; with store, also ids[row, :] and
// weights[row, :] exactly as routed_experts_route stores them. Thread t takes expert t (E <= the
// block's 256 threads) and counts the experts better than it under coil_better's order (the larger
// logit, the lower id on ties; NaN as -infinity): a total order, so the counts are the places
// 0 .. E-1 of the experts in it, and the experts of places below k are exactly the k that the
// route kernel's k rounds of argmax take, in the order it takes them (place t = round t). The
// weights then repeat route's arithmetic on the same f32 values: expf of each logit less the best
// (__fsub_rn), their sum by __fadd_rn in place order, and __fdiv_rn: bit for bit route's weights.
// An expert's place among the chosen by id is the count of chosen ids below it (the warps' ballots).
// Every thread of the block must call it (it holds three barriers, one before it touches shared memory).
//   logits: (rows, E) f32;  ids: (rows, k) int32;  weights: (rows, k) f32.
static __device__ __forceinline__ void routed_experts_route_row(const float* __restrict__ logits, int row,
        int experts, int per_token, bool store, int* __restrict__ ids, float* __restrict__ weights,
        RoutedExpertsRowRouting& routing) {
    const int thread = threadIdx.x;
    const int lane = thread & 31;
    const int warp = thread >> 5;
    const int padded = (experts + 3) & ~3;
    __syncthreads(); // every thread is done with the routing of the block's previous row
    float value = -INFINITY;
    if (thread < experts) {
        const float logit = logits[(size_t) row * experts + thread];
        value = isnan(logit) ? -INFINITY : logit;
    }
    if (thread < padded) {
        routing.values[thread] = value;
    }
    __syncthreads();
    // The padding's -infinity at ids past this thread's never counts as better.
    int place = 0;
    if (thread < experts) {
        const float4* quads = reinterpret_cast<const float4*>(routing.values);
        for (int q = 0; q < padded / 4; q++) {
            const float4 quad = quads[q];
            const float others[4] = {quad.x, quad.y, quad.z, quad.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int other = 4 * q + i;
                place += others[i] > value || (others[i] == value && other < thread) ? 1 : 0;
            }
        }
    }
    const bool chosen = thread < experts && place < per_token;
    const unsigned int ballot = __ballot_sync(0xffffffffu, chosen);
    if (lane == 0) {
        routing.chosen[warp] = ballot;
    }
    if (chosen) {
        routing.ranked[place] = value;
    }
    __syncthreads();
    if (chosen) {
        int slot = __popc(ballot & ((1u << lane) - 1u));
        for (int w = 0; w < warp; w++) {
            slot += __popc(routing.chosen[w]);
        }
        routing.ids[slot] = thread;
        if (store) {
            const float top = routing.ranked[0];
            float sum = 0.0f;
            for (int t = 0; t < per_token; t++) {
                sum = __fadd_rn(sum, expf(__fsub_rn(routing.ranked[t], top)));
            }
            ids[(size_t) row * per_token + slot] = thread;
            weights[(size_t) row * per_token + slot] = __fdiv_rn(expf(__fsub_rn(value, top)), sum);
        }
    }
    __syncthreads();
}

// routed_experts_route then routed_experts_gate_up in one launch: each block routes the rows of its
// pairs itself from the logits (a few hundred cycles of shared memory for E = 64, where a launch of
// its own costs microseconds), and the block of x-index 0 that holds a row's slot 0 stores the row's
// ids and weights for the down product. The outputs are gate_up's on route's ids, bit for bit.
//   logits: (rows, E) f32;  x: (rows, H) f32;  gate_and_up: (E · 2F, H) bf16 or f32;
//   ids: (rows, k) int32 and weights: (rows, k) f32, written;  out: (rows, k, F) f32.
// Grid: (ceil(F / ROUTED_EXPERTS_WARPS), min(rows · k, 65535)) as gate_up's, striding over the pairs;
// E <= ROUTED_EXPERTS_THREADS (a thread an expert).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_route_gate_up(const float* __restrict__ logits, int experts,
        int per_token, const float* __restrict__ x, int rows, int hidden, const void* __restrict__ gate_and_up,
        int width, int* __restrict__ ids, float* __restrict__ weights, float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    __shared__ RoutedExpertsRowRouting routing;
    COIL_AFTER_PREVIOUS_KERNEL(); // the logits (the router's product just before) and x
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    const bool vector = hidden % ELEMENTS == 0 && coil_aligned16(gate_and_up) && coil_aligned16(x);
    const int pairs = rows * per_token;
    // A block's pairs lie gridDim.y >= k apart, each in a row of its own: a routing a pair. The
    // block's warps past F take part in the routing's barriers and make no output.
    for (int pair = blockIdx.y; pair < pairs; pair += gridDim.y) {
        const int row = pair / per_token;
        const int slot = pair - row * per_token;
        routed_experts_route_row(logits, row, experts, per_token, blockIdx.x == 0 && slot == 0, ids, weights,
                routing);
        if (j < width) {
            const float value = routed_experts_gate_up_output<BF16>(x + (size_t) row * hidden, hidden, gate_and_up,
                    routing.ids[slot], width, j, vector);
            if (lane == 0) {
                out[(size_t) pair * width + j] = value;
            }
        }
    }
}

// out[r, j] = out[r, j] + moe, moe = Σ over slots s = 0 .. k-1 in order of weights[r, s] ·
// (Σ_c hidden_values[r, s, c] · W[ids[r, s] · H + j, c]), moe in f32 on its own and added to out once.
//   hidden_values: (rows, k, F) f32 (gate_up's output);  down: (E · H, F) bf16 or f32;
//   ids: (rows, k) int32;  weights: (rows, k) f32;  out: (rows, H) f32, read and written.
// An id outside [0, E) makes the output NaN rather than reading out of bounds.
// Grid: (ceil(H / ROUTED_EXPERTS_WARPS), min(rows, 65535)), striding over the rows; a warp an output
// j of a row, over up to ROUTED_EXPERTS_SLOT_GROUP slots a pass (a lane's loads of their weight rows
// in flight together).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_down_add(const float* __restrict__ hidden_values, int rows,
        int per_token, int width, const void* __restrict__ down, int experts, int hidden, const int* __restrict__ ids,
        const float* __restrict__ weights, float* __restrict__ out) {
    constexpr int ELEMENTS = RoutedExpertsChunk<BF16>::ELEMENTS;
    COIL_AFTER_PREVIOUS_KERNEL(); // the activations, ids and weights, and the residual stream
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * ROUTED_EXPERTS_WARPS + (threadIdx.x >> 5);
    if (j >= hidden) {
        return;
    }
    const size_t row_bytes = (size_t) width * (BF16 ? 2 : 4);
    const bool vector = width % ELEMENTS == 0 && coil_aligned16(down) && coil_aligned16(hidden_values);
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const int* row_ids = ids + (size_t) r * per_token;
        const float* row_weights = weights + (size_t) r * per_token;
        const float* row_values = hidden_values + (size_t) r * per_token * width;
        float moe = 0.0f;
        bool in_range = true;
        // The slots in groups of ROUTED_EXPERTS_SLOT_GROUP (one group for k <= 8), each group's sums
        // added to moe in slot order before the next group starts.
        for (int first = 0; first < per_token; first += ROUTED_EXPERTS_SLOT_GROUP) {
            const int slots = min(per_token - first, ROUTED_EXPERTS_SLOT_GROUP);
            // Each slot's row of weights: expert ids[r, s]'s row j (expert 0's for an id out of range,
            // whose output is NaN).
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
        if (lane == 0) {
            float* target = out + (size_t) r * hidden + j;
            *target = in_range ? __fadd_rn(*target, moe) : __int_as_float(0x7fc00000);
        }
    }
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_gate_up_bf16(
        const float* __restrict__ x, int rows, int hidden, const __nv_bfloat16* __restrict__ gate_and_up, int experts,
        int width, const int* __restrict__ ids, int per_token, float* __restrict__ out) {
    routed_experts_gate_up<true>(x, rows, hidden, gate_and_up, experts, width, ids, per_token, out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_gate_up_f32(
        const float* __restrict__ x, int rows, int hidden, const float* __restrict__ gate_and_up, int experts,
        int width, const int* __restrict__ ids, int per_token, float* __restrict__ out) {
    routed_experts_gate_up<false>(x, rows, hidden, gate_and_up, experts, width, ids, per_token, out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route_gate_up_bf16(
        const float* __restrict__ logits, int experts, int per_token, const float* __restrict__ x, int rows,
        int hidden, const __nv_bfloat16* __restrict__ gate_and_up, int width, int* __restrict__ ids,
        float* __restrict__ weights, float* __restrict__ out) {
    routed_experts_route_gate_up<true>(logits, experts, per_token, x, rows, hidden, gate_and_up, width, ids, weights,
            out);
}

extern "C" __global__ void __launch_bounds__(ROUTED_EXPERTS_THREADS) routed_experts_route_gate_up_f32(
        const float* __restrict__ logits, int experts, int per_token, const float* __restrict__ x, int rows,
        int hidden, const float* __restrict__ gate_and_up, int width, int* __restrict__ ids,
        float* __restrict__ weights, float* __restrict__ out) {
    routed_experts_route_gate_up<false>(logits, experts, per_token, x, rows, hidden, gate_and_up, width, ids, weights,
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
