#ifndef COIL_ROUTED_EXPERTS_ROUTING_CUH
#define COIL_ROUTED_EXPERTS_ROUTING_CUH
// The routing of one row by a block, which routed_experts.cu's launches share (the routing, the
// gate/up launch that routes its rows, the down launch that routes them again).
#include "routed_experts.cuh"

// A block's routing of one row, in shared memory, made by the block's ROUTED_EXPERTS_THREADS threads
// at once (a thread an expert).
struct RoutedExpertsRowRouting {
    // The row's choice values (softmax: the logits; sigmoid: s + bias, -infinity outside the kept
    // groups), NaN as -infinity, then -infinity up to a multiple of 4 (read as float4).
    __align__(16) float values[ROUTED_EXPERTS_MAX_EXPERTS];
    float groups[ROUTED_EXPERTS_MAX_GROUPS];         // each group's two best values, summed
    float ranked[ROUTED_EXPERTS_MAX_PER_TOKEN];      // the chosen logits (softmax) or s (sigmoid), best first
    unsigned int chosen[ROUTED_EXPERTS_WARPS];       // warp w's ballot: lane l's expert 32 w + l chosen
    int ids[ROUTED_EXPERTS_MAX_PER_TOKEN];           // the chosen experts, ascending
    float weights[ROUTED_EXPERTS_MAX_PER_TOKEN];     // their weights, in the same order
};

// routing.ids = row `row`'s k chosen experts (RoutedExpertsRouter), ascending, and routing.weights
// their weights; with store, also ids[row, :] and weights[row, :]. Thread t takes expert t (E <= the
// block's 256 threads). With groups, thread g < groups sums group g's two best values, and each
// expert whose group has groups_chosen or more groups better (the larger sum, the lower group on
// ties) gets -infinity. Then each expert counts the experts better than it (the larger value, the
// lower id on ties; NaN as -infinity): a total order, so the counts are the places 0 .. E-1 of the
// experts in it, and the experts of places below k are the chosen ones, in order of choice.
// Weights, in f32 as RoutedExperts (the CPU) computes them: softmax: expf of each chosen logit less
// the best (__fsub_rn), their sum by __fadd_rn in place order, __fdiv_rn; sigmoid: s (1 / (1 +
// expf(-logit))), normalised by __fdiv_rn over (their sum in place order + 1e-20), times scale.
// An expert's place among the chosen by id is the count of chosen ids below it (the warps' ballots).
// Every thread of the block must call it (it holds barriers, one before it touches shared memory).
//   logits: (rows, E) f32;  ids: (rows, k) int32;  weights: (rows, k) f32.
static __device__ __forceinline__ void routed_experts_route_row(const float* __restrict__ logits, int row,
        int experts, int per_token, const RoutedExpertsRouter& router, bool store, int* __restrict__ ids,
        float* __restrict__ weights, RoutedExpertsRowRouting& routing) {
    const int thread = threadIdx.x;
    const int lane = thread & 31;
    const int warp = thread >> 5;
    const int padded = (experts + 3) & ~3;
    const bool softmax = router.scoring == ROUTED_EXPERTS_SOFTMAX;
    __syncthreads(); // every thread is done with the routing of the block's previous row
    float value = -INFINITY; // the choice value
    float score = 0.0f;      // sigmoid: s, the weight before normalisation
    if (thread < experts) {
        // From L2 (__ldcg): routed_experts_route_down_add reads them before its wait, and no line an
        // earlier launch left in this multiprocessor's L1 may stand in for them.
        const float logit = __ldcg(logits + (size_t) row * experts + thread);
        if (softmax) {
            value = logit;
        } else {
            score = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-logit)));
            value = __fadd_rn(score, router.bias[thread]);
        }
        value = isnan(value) ? -INFINITY : value;
    }
    if (thread < padded) {
        routing.values[thread] = value;
    }
    __syncthreads();
    if (router.groups > 1) {
        const int size = experts / router.groups;
        if (thread < router.groups) {
            float first = -INFINITY;
            float second = -INFINITY;
            for (int i = 0; i < size; i++) {
                const float other = routing.values[thread * size + i];
                if (other > first) {
                    second = first;
                    first = other;
                } else if (other > second) {
                    second = other;
                }
            }
            routing.groups[thread] = __fadd_rn(first, second);
        }
        __syncthreads();
        if (thread < experts) {
            const int group = thread / size;
            const float mine = routing.groups[group];
            int better = 0;
            for (int g = 0; g < router.groups; g++) {
                const float other = routing.groups[g];
                better += other > mine || (other == mine && g < group) ? 1 : 0;
            }
            value = better < router.groups_chosen ? value : -INFINITY;
        }
        __syncthreads(); // every thread has read the values of its group
        if (thread < experts) {
            routing.values[thread] = value;
        }
        __syncthreads();
    }
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
        routing.ranked[place] = softmax ? value : score;
    }
    __syncthreads();
    if (chosen) {
        int slot = __popc(ballot & ((1u << lane) - 1u));
        for (int w = 0; w < warp; w++) {
            slot += __popc(routing.chosen[w]);
        }
        routing.ids[slot] = thread;
        {
            float weight;
            if (softmax) {
                const float top = routing.ranked[0];
                float sum = 0.0f;
                for (int t = 0; t < per_token; t++) {
                    sum = __fadd_rn(sum, expf(__fsub_rn(routing.ranked[t], top)));
                }
                weight = __fdiv_rn(expf(__fsub_rn(value, top)), sum);
            } else {
                weight = score;
                if (router.scoring == ROUTED_EXPERTS_SIGMOID_NORMALIZED) {
                    float sum = 0.0f;
                    for (int t = 0; t < per_token; t++) {
                        sum = __fadd_rn(sum, routing.ranked[t]);
                    }
                    weight = __fdiv_rn(score, __fadd_rn(sum, 1e-20f));
                }
                weight = __fmul_rn(weight, router.scale);
            }
            routing.weights[slot] = weight;
            if (store) {
                ids[(size_t) row * per_token + slot] = thread;
                weights[(size_t) row * per_token + slot] = weight;
            }
        }
    }
    __syncthreads();
}

#endif
