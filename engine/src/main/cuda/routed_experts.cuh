#ifndef COIL_ROUTED_EXPERTS_CUH
#define COIL_ROUTED_EXPERTS_CUH
// What the routed experts' two files share (routed_experts.cu: the routing and the per-pair
// products; routed_experts_grouped.cu: the pairs grouped by expert for the tensor cores).
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

#endif
