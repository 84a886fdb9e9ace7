// The synchronisation of decode_persistent.cu: the consumers' named barrier and block-wide
// reductions, and the grid barrier between phases (the ring's mbarriers and bulk copies are in
// bulk_copy.cuh). Included by decode_persistent.cu after its COIL_PD_* sizes, inside its sm_90 guard.
#ifndef COIL_PERSISTENT_SYNC_CUH
#define COIL_PERSISTENT_SYNC_CUH

#include "bulk_copy.cuh"

namespace coil_pd {

// The consumers' own barrier (named barrier 1): the producer warp never joins it.
static __device__ __forceinline__ void consumers_sync() {
    asm volatile("bar.sync 1, %0;" ::"n"(COIL_PD_CONSUMERS) : "memory");
}

// A reduction over the consumer warps: REDUCE within each warp, then over the warps' results
// (identity for the lanes past the consumers).
template <float (*REDUCE)(float)>
static __device__ __forceinline__ float consumers_reduce(float value, float identity, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    value = REDUCE(value);
    consumers_sync();
    if (lane == 0) {
        scratch[warp] = value;
    }
    consumers_sync();
    return REDUCE(lane < COIL_PD_WARPS ? scratch[lane] : identity);
}

static __device__ __forceinline__ float consumers_sum(float value, float* scratch) {
    return consumers_reduce<coil_warp_sum>(value, 0.0f, scratch);
}

static __device__ __forceinline__ float consumers_max(float value, float* scratch) {
    return consumers_reduce<coil_warp_max>(value, -INFINITY, scratch);
}

// The grid barrier: every block adds one to the count after each phase; phase p starts once the
// count reaches p · G. Thread 0 arrives after the consumers' barrier, so the block's writes come first.
// fence: 0 fence.sc (__threadfence) around the count, 1 fence.acq_rel, 2 none (timing only),
// 3 red.release and ld.acquire alone.
static __device__ __forceinline__ void grid_arrive(unsigned* count, int fence) {
    if (fence == 0) {
        __threadfence();
    } else if (fence == 1) {
        asm volatile("fence.acq_rel.gpu;" ::: "memory");
    }
    if (fence == 3) {
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(count) : "memory");
    } else {
        asm volatile("red.relaxed.gpu.global.add.u32 [%0], 1;" ::"l"(count) : "memory");
    }
}

static __device__ __forceinline__ void grid_wait(const unsigned* count, unsigned target, int fence) {
    unsigned seen;
    long long spins = 0;
    while (true) {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(count) : "memory");
        if (seen >= target) {
            break;
        }
        if (++spins > COIL_PD_SPIN_LIMIT) {
            __trap();
        }
    }
    if (fence == 0) {
        __threadfence();
    } else if (fence == 1) {
        asm volatile("fence.acq_rel.gpu;" ::: "memory");
    }
}

static __device__ __forceinline__ unsigned long long now() {
    unsigned long long time;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time));
    return time;
}

}  // namespace coil_pd

#endif
