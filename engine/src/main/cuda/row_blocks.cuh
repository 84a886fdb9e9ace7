// Blocks that share one row of logits: sampling.cu's draws and sampling_logprobs.cu's records. See
// common.cuh for why helpers are static and guarded.
#ifndef COIL_ROW_BLOCKS_CUH
#define COIL_ROW_BLOCKS_CUH

// The blocks that take one row of logits together (a draw, a logprobs record). On sm_90 they are a
// thread-block cluster of 1 to 16 blocks (a launch without clusters is a cluster of one), each taking
// one contiguous slice of the row; elsewhere one block takes the whole row. The blocks meet through
// distributed shared memory: each block publishes a value in its own shared memory, the row's blocks
// pass a barrier, and every block reads every block's value. A meeting uses one of two slots by turn,
// so a block may write the next meeting's slot while a slower block still reads this one's; the
// meeting after that cannot start before the slower block has passed the next barrier.
struct CoilRowBlocks {
    unsigned int rank;  // this block's place in the row
    unsigned int size;  // blocks a row
    int begin;          // this block's slice of the row: [begin, end)
    int end;
    int slice;          // the tokens of every slice but the last
    unsigned int turn;  // meetings so far; the slot is turn & 1
};

// The most blocks a row: an H100's largest (non-portable) cluster.
#define COIL_ROW_MOST_BLOCKS 16

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define COIL_ROW_CLUSTERS 1
#endif

static __device__ CoilRowBlocks coil_row_blocks(int vocab) {
    CoilRowBlocks blocks;
#ifdef COIL_ROW_CLUSTERS
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(blocks.rank));
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(blocks.size));
#else
    blocks.rank = 0;
    blocks.size = 1;
#endif
    const int per_block = (vocab + (int) blocks.size - 1) / (int) blocks.size;
    blocks.begin = min(vocab, (int) blocks.rank * per_block);
    blocks.end = min(vocab, blocks.begin + per_block);
    blocks.slice = per_block;
    blocks.turn = 0;
    return blocks;
}

// A barrier for every thread of the row's blocks, ordering their shared-memory writes before it
// (release) against reads after it (acquire).
static __device__ __forceinline__ void coil_row_sync() {
#ifdef COIL_ROW_CLUSTERS
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
    __syncthreads();
#endif
}

// The address of local's place in the shared memory of the row's block rank.
template <typename T>
static __device__ __forceinline__ const T* coil_row_address(const T* local, unsigned int rank) {
#ifdef COIL_ROW_CLUSTERS
    uint64_t address;
    asm("mapa.u64 %0, %1, %2;" : "=l"(address) : "l"(reinterpret_cast<uint64_t>(local)), "r"(rank));
    return reinterpret_cast<const T*>(address);
#else
    return local;
#endif
}

// The same, to write there.
template <typename T>
static __device__ __forceinline__ T* coil_row_address(T* local, unsigned int rank) {
    return const_cast<T*>(coil_row_address(const_cast<const T*>(local), rank));
}

// The value at local's place in the shared memory of the row's block rank.
template <typename T>
static __device__ __forceinline__ T coil_row_read(const T* local, unsigned int rank) {
    return *coil_row_address(local, rank);
}

// Order-preserving bits of a float; -0 counts as +0, since the CPU compares scores with > and ==.
static __device__ __forceinline__ unsigned int coil_sortable(float value) {
    const unsigned int bits = __float_as_uint(__fadd_rn(value, 0.0f));
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// A score's key in the row's order: larger scores first, equal ones by the lower id (the argmax's rule).
static __device__ __forceinline__ unsigned long long coil_score_key(float score, int id) {
    return ((unsigned long long) coil_sortable(score) << 32) | (0xffffffffu - (unsigned int) id);
}

// The token id of a score key.
static __device__ __forceinline__ int coil_key_id(unsigned long long key) {
    return (int) (0xffffffffu - (unsigned int) (key & 0xffffffffu));
}

#endif
