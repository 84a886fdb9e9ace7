#ifndef COIL_ROUTED_EXPERTS_CUH
#define COIL_ROUTED_EXPERTS_CUH
// What the routed experts' files share (routed_experts.cu: the routing and the per-pair products;
// routed_experts_grouped.cu: the pairs grouped by expert for the tensor cores; routed_experts_router.cu:
// the norm and the router's product): limits, the router's parameters, a weight row's elements.
#include "common.cuh"

// Blocks of 8 warps.
#define ROUTED_EXPERTS_WARPS 8
#define ROUTED_EXPERTS_THREADS (ROUTED_EXPERTS_WARPS * 32)
// The most experts a router row holds (the routing takes a block's thread an expert) and the most a token takes.
#define ROUTED_EXPERTS_MAX_EXPERTS 256
#define ROUTED_EXPERTS_MAX_PER_TOKEN 16
// The most groups a sigmoid router splits its experts into.
#define ROUTED_EXPERTS_MAX_GROUPS 32

// How a router's scores choose a row's experts and weigh them (BlockSpec.Router):
//   SOFTMAX: the k best logits (a tie to the lower expert), weighted by the softmax of those logits
//            (GraniteMoeHybrid);
//   SIGMOID, SIGMOID_NORMALIZED: s = sigmoid(logit); the choice ranks s + bias[e] within the
//            groups_chosen of `groups` groups of E / groups experts whose two best such values sum
//            highest (a tie to the lower group); the weights are the chosen experts' s (over their
//            sum plus 1e-20 when normalised) times scale (NemotronH, as DeepSeek-V3).
#define ROUTED_EXPERTS_SOFTMAX 0
#define ROUTED_EXPERTS_SIGMOID 1
#define ROUTED_EXPERTS_SIGMOID_NORMALIZED 2

struct RoutedExpertsRouter {
    int scoring;        // ROUTED_EXPERTS_SOFTMAX, _SIGMOID or _SIGMOID_NORMALIZED
    const float* bias;  // (E) f32, the sigmoid router's correction bias
    int groups;         // 1 .. ROUTED_EXPERTS_MAX_GROUPS, dividing E (softmax: 1)
    int groups_chosen;  // 1 .. groups
    float scale;        // the weights' multiplier (softmax: 1)
};

// Elements of a 16-byte chunk of weights: 8 bf16 or 4 f32.
template <bool BF16>
struct RoutedExpertsChunk {
    static constexpr int ELEMENTS = BF16 ? 8 : 4;
};

// A 16-byte chunk of weights widened: values[0 .. ELEMENTS).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_widen_chunk(uint4 packed, float (&values)[8]) {
    if constexpr (BF16) {
        coil_bf16x8_to_float(packed, values);
    } else {
        values[0] = __uint_as_float(packed.x);
        values[1] = __uint_as_float(packed.y);
        values[2] = __uint_as_float(packed.z);
        values[3] = __uint_as_float(packed.w);
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

// Chunk `chunk` of a row of weights (16-byte aligned), widened: values[0 .. ELEMENTS).
template <bool BF16>
static __device__ __forceinline__ void routed_experts_weight_chunk(const void* row, int chunk, float (&values)[8]) {
    routed_experts_widen_chunk<BF16>(coil_load_streaming(reinterpret_cast<const uint4*>(row) + chunk), values);
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

#endif
