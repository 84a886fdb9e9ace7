// What one dependent step of a decode chain costs, by mechanism, with no weights to read: each step
// reads the 768-float vector the step before wrote, sums its squares over the block, and writes
// 768 new floats (a warp a value), as a normed product's prologue and epilogue do.
//   plain:       one kernel per step, captured in a CUDA graph
//   programmatic: the same with programmatic stream serialization (griddepcontrol wait/trigger)
//   persistent:  one kernel of one or two blocks a multiprocessor, a grid barrier between steps:
//                a counter every block adds to, or a flag a block that every block reads
// and, for each, the same chain with an empty body (the dependency alone).
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/dependency_latency tools/bench/dependency_latency.cu
//   /tmp/dependency_latency [steps]
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int WIDTH = 768;
constexpr int THREADS = 256;

__device__ __forceinline__ void step_body(const float* in, float* out, int block, int blocks) {
    __shared__ float partial[THREADS / 32];
    float squares = 0.0f;
    for (int i = threadIdx.x; i < WIDTH; i += THREADS) {
        const float v = in[i];
        squares = fmaf(v, v, squares);
    }
    for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = squares;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < THREADS / 32; w++) total += partial[w];
    __syncthreads();
    // Each warp writes the values of its columns (columns spread over all blocks).
    const int warp = block * (THREADS / 32) + (threadIdx.x >> 5);
    const int warps = blocks * (THREADS / 32);
    if ((threadIdx.x & 31) == 0) {
        for (int c = warp; c < WIDTH; c += warps) out[c] = in[c] * rsqrtf(total / WIDTH + 1e-5f) + 1e-3f;
    }
}

__global__ void step_plain(const float* in, float* out) { step_body(in, out, blockIdx.x, gridDim.x); }

__global__ void step_programmatic(const float* in, float* out) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    step_body(in, out, blockIdx.x, gridDim.x);
}

__device__ __forceinline__ void grid_barrier(unsigned int* counter, unsigned int target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" :: "l"(counter) : "memory");
        unsigned int seen;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
        } while (seen < target);
    }
    __syncthreads();
}

// A barrier without a shared counter: block i publishes its step in flags[i]; warp 0 of every block
// reads all the flags (a lane a flag, a few rounds) until each has reached the step.
__device__ __forceinline__ void flag_barrier(unsigned int* flags, unsigned int step) {
    __syncthreads();
    if (threadIdx.x < 32) {
        if (threadIdx.x == 0) {
            asm volatile("st.release.gpu.global.u32 [%0], %1;" :: "l"(flags + blockIdx.x), "r"(step) : "memory");
        }
        for (int first = 0; first < (int) gridDim.x; first += 32) {
            const int i = first + threadIdx.x;
            unsigned int seen = step;
            if (i < (int) gridDim.x) {
                do {
                    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(flags + i) : "memory");
                } while (seen < step);
            }
        }
        __syncwarp();
    }
    __syncthreads();
}

__global__ void persistent(float* a, float* b, unsigned int* counter, int steps, int flags, int work) {
    for (int s = 0; s < steps; s++) {
        if (work) {
            step_body(s % 2 ? b : a, s % 2 ? a : b, blockIdx.x, gridDim.x);
        }
        if (flags) {
            flag_barrier(counter, s + 1);
        } else {
            grid_barrier(counter, (s + 1) * gridDim.x);
        }
    }
}

__global__ void empty_programmatic(const float* in, float* out) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = in[0] + 1.0f;
}

static float time_graph(cudaGraphExec_t exec, cudaStream_t stream, int repeats) {
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaEventRecord(start, stream));
    for (int r = 0; r < repeats; r++) CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaEventRecord(stop, stream));
    CHECK(cudaEventSynchronize(stop));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / repeats;
}

static cudaGraphExec_t capture_chain(cudaStream_t stream, float* a, float* b, int steps, int blocks, bool programmatic,
        bool empty) {
    cudaGraph_t graph;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    for (int s = 0; s < steps; s++) {
        const float* in = s % 2 ? b : a;
        float* out = s % 2 ? a : b;
        cudaLaunchConfig_t config = {};
        config.gridDim = dim3(blocks);
        config.blockDim = dim3(THREADS);
        config.stream = stream;
        cudaLaunchAttribute attribute[1];
        attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attribute[0].val.programmaticStreamSerializationAllowed = 1;
        config.attrs = programmatic ? attribute : nullptr;
        config.numAttrs = programmatic ? 1 : 0;
        if (programmatic && empty) {
            CHECK(cudaLaunchKernelEx(&config, empty_programmatic, in, out));
        } else if (programmatic) {
            CHECK(cudaLaunchKernelEx(&config, step_programmatic, in, out));
        } else {
            CHECK(cudaLaunchKernelEx(&config, step_plain, in, out));
        }
    }
    CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    return exec;
}

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 150;
    cudaDeviceProp properties;
    CHECK(cudaGetDeviceProperties(&properties, 0));
    const int sms = properties.multiProcessorCount;
    float *a, *b;
    unsigned int* counter;
    CHECK(cudaMalloc(&a, WIDTH * sizeof(float)));
    CHECK(cudaMalloc(&b, WIDTH * sizeof(float)));
    CHECK(cudaMalloc(&counter, 2 * sms * sizeof(unsigned int)));
    CHECK(cudaMemset(a, 0, WIDTH * sizeof(float)));
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::printf("%s, %d SMs, %d dependent steps of a %d-float normed vector\n", properties.name, sms, steps, WIDTH);
    for (int blocks : {1, sms, 2 * sms}) {
        for (int mode = 0; mode < 3; mode++) {
            const bool programmatic = mode > 0;
            const bool empty = mode == 2;
            cudaGraphExec_t exec = capture_chain(stream, a, b, steps, blocks, programmatic, empty);
            const float ms = time_graph(exec, stream, 20);
            std::printf("graph of %s launches%s, %4d blocks: %.2f us a step\n", programmatic ? "programmatic" : "plain",
                    empty ? " (empty body)" : "", blocks, 1000.0f * ms / steps);
            CHECK(cudaGraphExecDestroy(exec));
        }
    }
    for (int blocks : {sms, 2 * sms}) {
        for (int mode = 0; mode < 4; mode++) {
            const int flags = mode & 1;
            const int work = mode < 2;
            cudaGraph_t graph;
            CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
            CHECK(cudaMemsetAsync(counter, 0, 2 * sms * sizeof(unsigned int), stream));
            persistent<<<blocks, THREADS, 0, stream>>>(a, b, counter, steps, flags, work);
            CHECK(cudaStreamEndCapture(stream, &graph));
            cudaGraphExec_t exec;
            CHECK(cudaGraphInstantiate(&exec, graph, 0));
            const float ms = time_graph(exec, stream, 20);
            std::printf("one persistent kernel%s, %4d blocks: %.2f us a step (%s)\n", work ? "" : " (empty body)",
                    blocks, 1000.0f * ms / steps, flags ? "flag barrier" : "counter barrier");
            CHECK(cudaGraphExecDestroy(exec));
        }
    }
    return 0;
}
