// Bulk copies from global into shared memory (cp.async.bulk, sm_90) counted on mbarriers: a
// ring of shared-memory slots that one thread fills ahead while the block reads the slots before
// (decode_persistent.cu, lm_head_argmax.cu). Use inside an sm_90 guard.
#ifndef COIL_BULK_COPY_CUH
#define COIL_BULK_COPY_CUH

#include "common.cuh"

static __device__ __forceinline__ unsigned coil_shared_address(const void* p) {
    return (unsigned) __cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void coil_mbarrier_init(uint64_t* barrier, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(coil_shared_address(barrier)), "r"(count) : "memory");
}

// Arrives on the barrier and adds bytes to the transfer its phase waits for.
static __device__ __forceinline__ void coil_mbarrier_expect(uint64_t* barrier, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(coil_shared_address(barrier)),
            "r"(bytes) : "memory");
}

static __device__ __forceinline__ void coil_mbarrier_arrive(uint64_t* barrier) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(coil_shared_address(barrier)) : "memory");
}

// Waits for the completion of the barrier's phase of the given parity; traps after spin_limit
// tries (a copy that never completes is a bug, not a wait).
static __device__ __forceinline__ void coil_mbarrier_wait(uint64_t* barrier, unsigned parity, long long spin_limit) {
    const unsigned address = coil_shared_address(barrier);
    long long spins = 0;
    unsigned done = 0;
    while (true) {
        asm volatile(
                "{\n"
                ".reg .pred ready;\n"
                "mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2;\n"
                "selp.u32 %0, 1, 0, ready;\n"
                "}\n"
                : "=r"(done)
                : "r"(address), "r"(parity)
                : "memory");
        if (done) {
            return;
        }
        if (++spins > spin_limit) {
            __trap();
        }
    }
}

// bytes (a multiple of 16) from global memory into shared memory, counted on barrier.
static __device__ __forceinline__ void coil_bulk_copy(void* target, const void* source, unsigned bytes,
        uint64_t* barrier) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                         coil_shared_address(target)),
            "l"(source), "r"(bytes), "r"(coil_shared_address(barrier))
            : "memory");
}

#endif
