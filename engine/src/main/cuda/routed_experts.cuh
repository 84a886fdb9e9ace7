#ifndef COIL_ROUTED_EXPERTS_CUH
#define COIL_ROUTED_EXPERTS_CUH
// What the routed experts' two files share (routed_experts.cu: the routing and the per-pair
// products; routed_experts_grouped.cu: the pairs grouped by expert for the tensor cores).
#include "common.cuh"

// Blocks of 8 warps.
#define ROUTED_EXPERTS_WARPS 8
#define ROUTED_EXPERTS_THREADS (ROUTED_EXPERTS_WARPS * 32)
// The most experts a router row holds (a lane holds E / 32 of them) and the most a token takes.
#define ROUTED_EXPERTS_MAX_EXPERTS 256
#define ROUTED_EXPERTS_MAX_PER_TOKEN 16

#endif
