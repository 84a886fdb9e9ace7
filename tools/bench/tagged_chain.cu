// The batch-1 chain of Mamba layers of tools/bench/decode_chain.cu (24 layers at the 300M shapes:
// in_proj 768 → 3352 on the normed residual, the selective state update of 24 heads of 64 rows and
// 128 states, out_proj 1536 → 768 on the gated norm, gate and up 768 → 2 · 2048 on the normed
// residual ending in silu(gate) · up, down 2048 → 768; 406 MB of bf16 weights, each layer its own,
// so each run reads them from HBM), but in one persistent kernel whose phases need no grid barrier:
// every activation a phase writes is a 64-bit word of (tag, f32 value), stored at once, and a phase
// reads its operand by loading those words until each carries its own tag (the phase's number in
// this run). A read is then its own barrier: a block goes on as soon as the values it needs exist,
// not once every block has arrived somewhere.
//
// Each block keeps its own copy of the residual stream in registers (every block reads every value
// of each residual update anyway, to take its norm), so the residual adds cost nothing. Before it
// waits for a phase's operand, each warp issues the loads of its rows of the phase's weights into
// registers (one phase ahead; HBM's latency and part of its transfer hide behind the wait).
//
// Modes, all of the same kernel (the first run of each is checked against a double-precision host
// reference of the same chain):
//   tagged:          as above;
//   barrier:         a grid barrier before each phase (a counter every block adds to), the same body;
//   tagged, no weights / barrier, no weights: the chain without its weight loads (constant weights),
//                    what the dependencies and the bodies alone cost.
// Block 0 also records %globaltimer once each phase's operand is in place; the program prints the
// median over layers of each phase's time to the next one's.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/tagged_chain tools/bench/tagged_chain.cu
//   /tmp/tagged_chain [runs=40]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>
#include <vector>
#include "mamba_chain.cuh"

constexpr int PHASES_A_LAYER = 5, PHASES = LAYERS * PHASES_A_LAYER;

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

struct Layer {
    const uint4* in_proj;   // (PROJECTED, HIDDEN) bf16
    const uint4* out_proj;  // (HIDDEN, INNER)
    const uint4* gate_up;   // (2 · FFN, HIDDEN): gate rows, then up rows
    const uint4* down;      // (HIDDEN, FFN)
    float* state;           // (HEADS · HEAD_DIM, STATE) f32
};

struct Activations {  // tagged words: (tag << 32) | f32 bits
    unsigned long long* projected;  // PROJECTED
    unsigned long long* y;          // INNER
    unsigned long long* out;        // HIDDEN
    unsigned long long* hidden;     // FFN: silu(gate) · up
    unsigned long long* down;       // HIDDEN
};

__device__ __forceinline__ void store_tagged(unsigned long long* at, float value, unsigned int tag) {
    const unsigned long long word = ((unsigned long long) tag << 32) | __float_as_uint(value);
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" :: "l"(at), "l"(word) : "memory");
}

__device__ __forceinline__ unsigned long long load_word(const unsigned long long* at) {
    unsigned long long word;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(word) : "l"(at) : "memory");
    return word;
}

// Loads N tagged values (index i at at[index(i)]) and loads again those not yet of this tag, until
// all are. Every load of a round is issued before any is checked.
template <int N, typename Index>
__device__ __forceinline__ void load_tagged(const unsigned long long* at, Index index, unsigned int tag, float (&out)[N],
        int backoff) {
    unsigned long long words[N];
#pragma unroll
    for (int i = 0; i < N; i++) words[i] = load_word(at + index(i));
    long long rounds = 0;
    while (true) {
        bool ready = true;
#pragma unroll
        for (int i = 0; i < N; i++) ready &= (unsigned int) (words[i] >> 32) == tag;
        if (ready) break;
        if (++rounds > (1ll << 28)) __trap();
        if (backoff > 0) __nanosleep(backoff);
#pragma unroll
        for (int i = 0; i < N; i++) {
            if ((unsigned int) (words[i] >> 32) != tag) words[i] = load_word(at + index(i));
        }
    }
#pragma unroll
    for (int i = 0; i < N; i++) out[i] = __uint_as_float((unsigned int) words[i]);
}

__device__ __forceinline__ void grid_barrier(unsigned int* counter, unsigned int target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" :: "l"(counter) : "memory");
        unsigned int seen;
        long long spins = 0;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
            if (++spins > (1ll << 28)) __trap();
        } while (seen < target);
    }
    __syncthreads();
}

// One warp's rows of a product, in registers: ROWS rows of K bf16, lane l holding 8 values at
// k = (c · 32 + l) · 8 of each row for c < K / 256.
template <int ROWS, int K>
struct Rows {
    uint4 w[ROWS][K / 256];
};

template <bool WEIGHTS, int ROWS, int K>
__device__ __forceinline__ void load_rows(Rows<ROWS, K>& rows, const uint4* matrix, const int (&row)[ROWS], int lane) {
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
#pragma unroll
        for (int c = 0; c < K / 256; c++) {
            if (!WEIGHTS) {
                rows.w[i][c] = make_uint4(0x3c003c00u, 0x3c003c00u, 0x3c003c00u, 0x3c003c00u);
            } else if (row[i] >= 0) {
                rows.w[i][c] = __ldg(matrix + (size_t) row[i] * (K / 8) + c * 32 + lane);
            }
        }
    }
}

// Row i of the warp's rows dotted with x (K floats in shared memory), summed over the warp.
template <int ROWS, int K>
__device__ __forceinline__ float dot(const Rows<ROWS, K>& rows, int i, const float* x, int lane) {
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < K / 256; c++) sum = dot8(rows.w[i][c], x + (c * 32 + lane) * 8, sum);
    return warp_sum(sum);
}

// The rows of `units` this warp computes: the block's share [units · b / G, units · (b + 1) / G),
// taken by its warps in turn; -1 past the share.
template <int ROWS>
__device__ __forceinline__ void warp_units(int units, int warp, int (&unit)[ROWS]) {
    const int first = (int) ((long long) units * blockIdx.x / gridDim.x);
    const int end = (int) ((long long) units * (blockIdx.x + 1) / gridDim.x);
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int u = first + warp + i * WARPS;
        unit[i] = u < end ? u : -1;
    }
}

template <bool TAGGED, bool WEIGHTS>
__global__ void __launch_bounds__(THREADS, 1)
chain(const Layer* layers, Activations act, const float* input, float* output, unsigned int* epoch,
        unsigned int* counter, unsigned long long* trace, int backoff) {
    // Operands in shared memory, two alternating by the parity of the block's shared-memory phases.
    __shared__ __align__(16) float operand[2][FFN];
    __shared__ float partial[2][WARPS];
    __shared__ unsigned int base_shared;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) base_shared = *epoch * PHASES;
    __syncthreads();
    const unsigned int base = base_shared;
    // This run's tag of phase p's values: base + p + 1 (the words start at 0, and every run's tags are new).
    auto tag = [&](int phase) { return base + (unsigned int) phase + 1u; };
    auto dependency = [&](int phase) {
        // Phase p passes the p-th barrier of the run (phase 0 has none; the counter starts at 0).
        if (!TAGGED) grid_barrier(counter, (unsigned int) phase * gridDim.x);
    };
    auto mark = [&](int phase) {
        if (blockIdx.x == 0 && threadIdx.x == 0) trace[phase] = global_time();
    };
    float residual[HIDDEN / THREADS];  // thread t holds k = t + 256 j
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) residual[j] = input[threadIdx.x + j * THREADS];
    int parity = 0;
    for (int l = 0; l < LAYERS; l++) {
        const Layer layer = layers[l];
        const int phase0 = l * PHASES_A_LAYER;
        // in_proj: projected = W_in · (h / rms(h)), h += the previous layer's down first.
        {
            int unit[4];
            warp_units<4>(PROJECTED, warp, unit);
            Rows<4, HIDDEN> rows;
            load_rows<WEIGHTS>(rows, layer.in_proj, unit, lane);
            if (l > 0) {
                dependency(phase0);
                float added[HIDDEN / THREADS];
                load_tagged(act.down, [&](int j) { return threadIdx.x + j * THREADS; }, tag(phase0 - 1), added, backoff);
#pragma unroll
                for (int j = 0; j < HIDDEN / THREADS; j++) residual[j] += added[j];
            }
            float squares = 0.0f;
#pragma unroll
            for (int j = 0; j < HIDDEN / THREADS; j++) {
                operand[parity][threadIdx.x + j * THREADS] = residual[j];
                squares = fmaf(residual[j], residual[j], squares);
            }
            const float inverse = rsqrtf(block_sum(squares, partial[parity]) / HIDDEN + EPS);
            mark(phase0);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                if (unit[i] < 0) continue;
                const float value = dot(rows, i, operand[parity], lane) * inverse;
                if (lane == 0) store_tagged(act.projected + unit[i], value, tag(phase0));
            }
            parity ^= 1;
        }
        // The state update of (head, row) items, a warp an item (at most two a warp), lane l holding
        // states l + 32 j, read before the phase's dependency. B and C (the same for every item) are
        // read once a block into shared memory: read by every warp, their 16 lines of L2 would take
        // a thousand warps' polling.
        {
            __shared__ float bc_shared[2 * STATE];
            const int global_warp = blockIdx.x * WARPS + warp;
            const int warps = gridDim.x * WARPS;
            float states[2][STATE / 32];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const int item = global_warp + i * warps;
                if (item < HEADS * HEAD_DIM) {
#pragma unroll
                    for (int j = 0; j < STATE / 32; j++) states[i][j] = layer.state[(size_t) item * STATE + lane + 32 * j];
                }
            }
            dependency(phase0 + 1);
            float bc[1];
            load_tagged(act.projected, [&](int) { return B_AT + threadIdx.x; }, tag(phase0), bc, backoff);
            bc_shared[threadIdx.x] = bc[0];
            __syncthreads();
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const int item = global_warp + i * warps;
                if (item >= HEADS * HEAD_DIM) break;
                const int head = item / HEAD_DIM;
                float xdt[2];
                load_tagged(act.projected, [&](int j) { return j == 0 ? X_AT + item : DT_AT + head; }, tag(phase0), xdt, backoff);
                if (i == 0) mark(phase0 + 1);
                const float dt = log1pf(__expf(xdt[1]));
                const float decay = __expf(-dt * 0.1f * (head + 1));
                const float x = xdt[0];
                const float y = update_state_row(states[i], decay, dt, x, bc_shared, layer.state + (size_t) item * STATE, lane);
                if (lane == 0) store_tagged(act.y + item, y, tag(phase0 + 1));
            }
        }
        // out_proj on the gated norm: v = y · silu(z), out = W_out · (v / rms(v)).
        {
            int unit[1];
            warp_units<1>(HIDDEN, warp, unit);
            Rows<1, INNER> rows;
            load_rows<WEIGHTS>(rows, layer.out_proj, unit, lane);
            dependency(phase0 + 2);
            float y[INNER / THREADS], z[INNER / THREADS];
            load_tagged(act.y, [&](int j) { return threadIdx.x + j * THREADS; }, tag(phase0 + 1), y, backoff);
            load_tagged(act.projected, [&](int j) { return Z_AT + threadIdx.x + j * THREADS; }, tag(phase0), z, backoff);
            float squares = 0.0f;
#pragma unroll
            for (int j = 0; j < INNER / THREADS; j++) {
                const float v = y[j] * silu(z[j]);
                operand[parity][threadIdx.x + j * THREADS] = v;
                squares = fmaf(v, v, squares);
            }
            const float inverse = rsqrtf(block_sum(squares, partial[parity]) / INNER + EPS);
            mark(phase0 + 2);
            if (unit[0] >= 0) {
                const float value = dot(rows, 0, operand[parity], lane) * inverse;
                if (lane == 0) store_tagged(act.out + unit[0], value, tag(phase0 + 2));
            }
            parity ^= 1;
        }
        // gate and up on the normed residual (h += out first): hidden = silu(gate) · up.
        {
            int unit[2];
            warp_units<2>(FFN, warp, unit);
            int row[4] = {unit[0], unit[0] < 0 ? -1 : FFN + unit[0], unit[1], unit[1] < 0 ? -1 : FFN + unit[1]};
            Rows<4, HIDDEN> rows;
            load_rows<WEIGHTS>(rows, layer.gate_up, row, lane);
            dependency(phase0 + 3);
            float added[HIDDEN / THREADS];
            load_tagged(act.out, [&](int j) { return threadIdx.x + j * THREADS; }, tag(phase0 + 2), added, backoff);
            float squares = 0.0f;
#pragma unroll
            for (int j = 0; j < HIDDEN / THREADS; j++) {
                residual[j] += added[j];
                operand[parity][threadIdx.x + j * THREADS] = residual[j];
                squares = fmaf(residual[j], residual[j], squares);
            }
            const float inverse = rsqrtf(block_sum(squares, partial[parity]) / HIDDEN + EPS);
            mark(phase0 + 3);
#pragma unroll
            for (int i = 0; i < 2; i++) {
                if (unit[i] < 0) continue;
                const float gate = dot(rows, 2 * i, operand[parity], lane) * inverse;
                const float up = dot(rows, 2 * i + 1, operand[parity], lane) * inverse;
                if (lane == 0) store_tagged(act.hidden + unit[i], silu(gate) * up, tag(phase0 + 3));
            }
            parity ^= 1;
        }
        // down: out = W_down · hidden.
        {
            int unit[1];
            warp_units<1>(HIDDEN, warp, unit);
            Rows<1, FFN> rows;
            load_rows<WEIGHTS>(rows, layer.down, unit, lane);
            dependency(phase0 + 4);
            float hidden[FFN / THREADS];
            load_tagged(act.hidden, [&](int j) { return threadIdx.x + j * THREADS; }, tag(phase0 + 3), hidden, backoff);
#pragma unroll
            for (int j = 0; j < FFN / THREADS; j++) operand[parity][threadIdx.x + j * THREADS] = hidden[j];
            __syncthreads();
            mark(phase0 + 4);
            if (unit[0] >= 0) {
                const float value = dot(rows, 0, operand[parity], lane);
                if (lane == 0) store_tagged(act.down + unit[0], value, tag(phase0 + 4));
            }
            parity ^= 1;
        }
    }
    dependency(PHASES);
    float added[HIDDEN / THREADS];
    load_tagged(act.down, [&](int j) { return threadIdx.x + j * THREADS; }, tag(PHASES - 1), added, backoff);
    if (blockIdx.x == 0) {
#pragma unroll
        for (int j = 0; j < HIDDEN / THREADS; j++) output[threadIdx.x + j * THREADS] = residual[j] + added[j];
    }
    // Every block has read this run's tag base (block 0 got here only through every block's words).
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        trace[PHASES] = global_time();
        *epoch += 1;
    }
}

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 40;
    cudaDeviceProp properties;
    CHECK(cudaGetDeviceProperties(&properties, 0));
    const int blocks = properties.multiProcessorCount;
    std::vector<Layer> layers(LAYERS);
    std::vector<std::vector<unsigned short>> host_weights(LAYERS * 4);
    size_t weight_bytes = 0;
    for (int l = 0; l < LAYERS; l++) {
        const uint4* pointers[4];
        for (int m = 0; m < 4; m++) {
            pointers[m] = reinterpret_cast<const uint4*>(random_matrix(l, m, host_weights[l * 4 + m]));
            weight_bytes += host_weights[l * 4 + m].size() * 2;
        }
        float* state;
        CHECK(cudaMalloc(&state, (size_t) HEADS * HEAD_DIM * STATE * sizeof(float)));
        layers[l] = Layer{pointers[0], pointers[1], pointers[2], pointers[3], state};
    }
    Layer* device_layers;
    CHECK(cudaMalloc(&device_layers, LAYERS * sizeof(Layer)));
    CHECK(cudaMemcpy(device_layers, layers.data(), LAYERS * sizeof(Layer), cudaMemcpyHostToDevice));
    Activations act;
    unsigned long long* words;
    const size_t word_count = PROJECTED + INNER + HIDDEN + FFN + HIDDEN;
    CHECK(cudaMalloc(&words, word_count * 8));
    CHECK(cudaMemset(words, 0, word_count * 8));
    act.projected = words;
    act.y = act.projected + PROJECTED;
    act.out = act.y + INNER;
    act.hidden = act.out + HIDDEN;
    act.down = act.hidden + FFN;
    std::vector<float> input(HIDDEN);
    for (int i = 0; i < HIDDEN; i++) input[i] = std::sin(0.37f * i) + 0.1f;
    float *device_input, *output;
    unsigned int *epoch, *counter;
    unsigned long long* trace;
    CHECK(cudaMalloc(&device_input, HIDDEN * 4));
    CHECK(cudaMalloc(&output, HIDDEN * 4));
    CHECK(cudaMalloc(&epoch, 4));
    CHECK(cudaMalloc(&counter, 4));
    CHECK(cudaMalloc(&trace, (PHASES + 1) * 8));
    CHECK(cudaMemcpy(device_input, input.data(), HIDDEN * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(epoch, 0, 4));
    const std::vector<double> expected = reference(host_weights, input);
    std::printf("%s, %d blocks of %d threads, %d layers, %.1f MB of weights\n", properties.name, blocks, THREADS,
            LAYERS, weight_bytes / 1e6);
    struct Mode {
        const char* name;
        void (*kernel)(const Layer*, Activations, const float*, float*, unsigned int*, unsigned int*, unsigned long long*, int);
        bool weights;
        int backoff;  // ns slept between polling rounds
    };
    const Mode modes[] = {{"tagged", chain<true, true>, true, 0}, {"tagged, 100 ns backoff", chain<true, true>, true, 100},
            {"tagged, 400 ns backoff", chain<true, true>, true, 400}, {"barrier", chain<false, true>, true, 0},
            {"tagged, no weights", chain<true, false>, false, 0}, {"tagged, no w., 100 ns", chain<true, false>, false, 100},
            {"barrier, no weights", chain<false, false>, false, 0}};
    const char* phase_names[PHASES_A_LAYER] = {"in_proj", "state", "out_proj", "gate_up", "down"};
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int round = 0; round < 2; round++) {
        for (const Mode& mode : modes) {
            for (const Layer& layer : layers) CHECK(cudaMemset(layer.state, 0, (size_t) HEADS * HEAD_DIM * STATE * 4));
            CHECK(cudaMemset(counter, 0, 4));
            mode.kernel<<<blocks, THREADS>>>(device_layers, act, device_input, output, epoch, counter, trace, mode.backoff);
            CHECK(cudaDeviceSynchronize());
            if (mode.weights && round == 0) {
                print_difference(output, expected, mode.name);
            }
            CHECK(cudaEventRecord(start));
            for (int r = 0; r < runs; r++) {
                CHECK(cudaMemset(counter, 0, 4));
                mode.kernel<<<blocks, THREADS>>>(device_layers, act, device_input, output, epoch, counter, trace, mode.backoff);
            }
            CHECK(cudaEventRecord(stop));
            CHECK(cudaEventSynchronize(stop));
            float ms;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            std::vector<unsigned long long> marks(PHASES + 1);
            CHECK(cudaMemcpy(marks.data(), trace, (PHASES + 1) * 8, cudaMemcpyDeviceToHost));
            std::printf("%-24s run %d: %.1f us a run with its launch and memset (%.2f a layer); in the kernel, first phase to end %.1f us; median us a phase:",
                    mode.name, round, 1000.0f * ms / runs, 1000.0f * ms / runs / LAYERS, (marks[PHASES] - marks[0]) / 1000.0);
            for (int p = 0; p < PHASES_A_LAYER; p++) {
                std::vector<double> spans;
                for (int l = 0; l < LAYERS; l++) {
                    const int phase = l * PHASES_A_LAYER + p;
                    spans.push_back((marks[phase + 1] - marks[phase]) / 1000.0);
                }
                std::sort(spans.begin(), spans.end());
                std::printf(" %s %.2f", phase_names[p], spans[spans.size() / 2]);
            }
            std::printf("\n");
        }
    }
    return 0;
}
