// The chain of tools/bench/mamba_chain.cuh (24 Mamba layers with their MLPs at the 300M widths,
// 406.7 MB of bf16 weights from HBM) in three dependent launches a layer instead of five, by
// splitting out_proj and down over their inputs (split-K) and adding the blocks' partial outputs
// with integer atomics, which give the same sum in any order:
//   in_proj:   h = h_before + Σ down; p = W_in · (h / rms(h))          (one row a warp, as gemv.cu)
//   state_out: block (head, part) updates the state of its R rows of the head, makes v = y · silu(z)
//              for them, and adds W_out[:, its R columns] · v and Σ v² into fixed-point sums
//   mlp:       h2 = h + (Σ W_out v) / rms(v); block b computes silu(gate) · up for its U units of
//              h2 / rms(h2) and adds W_down[:, its U units] · (silu(gate) · up) into fixed-point sums
// The sums are 64-bit integers of value · 2^32 (red.global.add.u64), zeroed by a memset at the
// graph's start; every launch is programmatic (griddepcontrol: dependents may start at once and load
// their weights; each waits before reading what the launch before wrote), replayed from a CUDA graph.
// W_out and W_down are kept transposed (a column a row) so that a block's slice is contiguous.
// The first replay's output is checked against the double-precision reference from zero states; thread
// 0 of block 0 of every launch records %globaltimer when its wait returns, and the program prints
// the median over layers of each launch's time to the next one's wait.
//
// Each setting runs with dependents let start at each launch's start and after its wait, in turn,
// twice with weights and once without.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/fused_chain tools/bench/fused_chain.cu
//   /tmp/fused_chain [replays=40]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include <vector>
#include "mamba_chain.cuh"

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int IN_PROJ_BLOCKS = 210;  // 16 rows a block at most: two a warp
constexpr int LAUNCHES_A_LAYER = 3;

struct Layer {
    const uint4* in_proj;             // (PROJECTED, HIDDEN)
    const unsigned short* out_proj_t; // (INNER, HIDDEN): W_out transposed
    const uint4* gate_up;             // (2 · FFN, HIDDEN)
    const unsigned short* down_t;     // (FFN, HIDDEN): W_down transposed
    float* state;                     // (HEADS · HEAD_DIM, STATE)
    long long* out_sums;              // HIDDEN sums of W_out v, then Σ v²
    long long* down_sums;             // HIDDEN
    float* h;                         // HIDDEN: the residual before the layer's mixer (in_proj's block 0)
    float* h2;                        // HIDDEN: after the mixer (mlp's block 0)
    float* projected;                 // PROJECTED
};

// Whether a launch lets its dependents start at its own start (1) or only after its wait (0).
__constant__ int dependents_at_start;

// Whether the launches load their weights (1) or use a constant instead (0: the chain's floor
// without weights; its output is then not the reference's).
__constant__ int with_weights;

__device__ __forceinline__ void let_dependents_start() {
    if (dependents_at_start) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__device__ __forceinline__ void wait_for_previous() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (!dependents_at_start) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__device__ __forceinline__ void mark(unsigned long long* trace) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *trace = global_time();
}

__device__ __forceinline__ float bf16(unsigned short bits) { return __uint_as_float((unsigned int) bits << 16); }

__device__ __forceinline__ void add_fixed(long long* sum, float value) {
    atomicAdd(reinterpret_cast<unsigned long long*>(sum), (unsigned long long) __float2ll_rn(value * 4294967296.0f));
}

__device__ __forceinline__ float from_fixed(long long sum) { return (float) ((double) sum * (1.0 / 4294967296.0)); }

// Row (lane's 8 values at (c · 32 + lane) · 8 for c < 3) of a 768-wide bf16 matrix dotted with x.
__device__ __forceinline__ float dot768(const uint4 (&w)[3], const float* x, int lane) {
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < 3; c++) sum = dot8(w[c], x + (c * 32 + lane) * 8, sum);
    return warp_sum(sum);
}

__device__ __forceinline__ void load_row768(uint4 (&w)[3], const uint4* matrix, int row, int lane) {
#pragma unroll
    for (int c = 0; c < 3; c++) {
        w[c] = with_weights ? __ldg(matrix + (size_t) row * (HIDDEN / 8) + c * 32 + lane)
                            : make_uint4(0x3c003c00u, 0x3c003c00u, 0x3c003c00u, 0x3c003c00u);
    }
}

// in_proj: h = (layer 0) input or the layer before's h2 + its down sums; block 0 keeps h for mlp.
__global__ void __launch_bounds__(THREADS) in_proj(Layer layer, const Layer* before, const float* input,
        unsigned long long* trace) {
    __shared__ __align__(16) float x[HIDDEN];
    __shared__ float partial[WARPS];
    let_dependents_start();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int first = PROJECTED * blockIdx.x / gridDim.x, end = PROJECTED * (blockIdx.x + 1) / gridDim.x;
    uint4 w[2][3];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int row = first + warp + i * WARPS;
        if (row < end) load_row768(w[i], layer.in_proj, row, lane);
    }
    wait_for_previous();
    mark(trace);
    float h[HIDDEN / THREADS];
    float squares = 0.0f;
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) {
        const int k = threadIdx.x + j * THREADS;
        h[j] = before == nullptr ? input[k] : before->h2[k] + from_fixed(before->down_sums[k]);
        squares = fmaf(h[j], h[j], squares);
        if (blockIdx.x == 0) layer.h[k] = h[j];
    }
    const float inverse = rsqrtf(block_sum(squares, partial) / HIDDEN + EPS);
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) x[threadIdx.x + j * THREADS] = h[j] * inverse;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int row = first + warp + i * WARPS;
        if (row >= end) continue;
        const float value = dot768(w[i], x, lane);
        if (lane == 0) layer.projected[row] = value;
    }
}

// state_out: block (head, part) of HEAD_DIM / R parts; warp w updates rows w, w + 8, … of its R
// (lane l holding states l + 32 j), then each thread adds its three output columns of
// W_out[:, the R columns] · v.
template <int R>
__global__ void __launch_bounds__(THREADS) state_out(Layer layer, unsigned long long* trace) {
    constexpr int PARTS = HEAD_DIM / R;
    constexpr int ROWS_A_WARP = (R + WARPS - 1) / WARPS;
    __shared__ float bc[2 * STATE];
    __shared__ float v[R];
    let_dependents_start();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int head = blockIdx.x / PARTS;
    const int column0 = head * HEAD_DIM + (blockIdx.x % PARTS) * R;
    float s[ROWS_A_WARP][STATE / 32];
#pragma unroll
    for (int i = 0; i < ROWS_A_WARP; i++) {
        const int r = warp + i * WARPS;
        if (r < R) {
#pragma unroll
            for (int j = 0; j < STATE / 32; j++) s[i][j] = layer.state[(size_t) (column0 + r) * STATE + lane + 32 * j];
        }
    }
    unsigned short w[R][HIDDEN / THREADS];
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
        for (int j = 0; j < HIDDEN / THREADS; j++) w[r][j] = with_weights ? layer.out_proj_t[(size_t) (column0 + r) * HIDDEN + threadIdx.x + j * THREADS] : 0x3c00;
    }
    wait_for_previous();
    mark(trace);
    bc[threadIdx.x] = layer.projected[B_AT + threadIdx.x];  // B then C: 2 · STATE = THREADS
    const float dt = log1pf(__expf(layer.projected[DT_AT + head]));
    const float decay = __expf(-dt * 0.1f * (head + 1));
    __syncthreads();
#pragma unroll
    for (int i = 0; i < ROWS_A_WARP; i++) {
        const int r = warp + i * WARPS;
        if (r >= R) break;
        const int item = column0 + r;
        const float x = layer.projected[X_AT + item];
        const float z = layer.projected[Z_AT + item];
        const float y = update_state_row(s[i], decay, dt, x, bc, layer.state + (size_t) item * STATE, lane);
        if (lane == 0) v[r] = y * silu(z);
    }
    __syncthreads();
    if (warp == 0) {
        float squares = 0.0f;
        for (int r = lane; r < R; r += 32) squares = fmaf(v[r], v[r], squares);
        squares = warp_sum(squares);
        if (lane == 0) add_fixed(layer.out_sums + HIDDEN, squares);
    }
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) {
        float sum = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) sum = fmaf(bf16(w[r][j]), v[r], sum);
        add_fixed(layer.out_sums + threadIdx.x + j * THREADS, sum);
    }
}

// mlp: block b takes units [b · U, (b + 1) · U), warp w units w, w + 8, …
template <int U>
__global__ void __launch_bounds__(THREADS) mlp(Layer layer, unsigned long long* trace) {
    constexpr int UNITS_A_WARP = U / WARPS;
    __shared__ __align__(16) float x[HIDDEN];
    __shared__ float partial[WARPS];
    __shared__ float g[U];
    let_dependents_start();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int unit0 = blockIdx.x * U;
    uint4 gate[UNITS_A_WARP][3], up[UNITS_A_WARP][3];
#pragma unroll
    for (int i = 0; i < UNITS_A_WARP; i++) {
        const int unit = unit0 + warp + i * WARPS;
        load_row768(gate[i], layer.gate_up, unit, lane);
        load_row768(up[i], layer.gate_up, FFN + unit, lane);
    }
    unsigned short w[U][HIDDEN / THREADS];
#pragma unroll
    for (int u = 0; u < U; u++) {
#pragma unroll
        for (int j = 0; j < HIDDEN / THREADS; j++) w[u][j] = with_weights ? layer.down_t[(size_t) (unit0 + u) * HIDDEN + threadIdx.x + j * THREADS] : 0x3c00;
    }
    wait_for_previous();
    mark(trace);
    const float inverse_v = rsqrtf(from_fixed(layer.out_sums[HIDDEN]) / INNER + EPS);
    float h[HIDDEN / THREADS];
    float squares = 0.0f;
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) {
        const int k = threadIdx.x + j * THREADS;
        h[j] = layer.h[k] + from_fixed(layer.out_sums[k]) * inverse_v;
        squares = fmaf(h[j], h[j], squares);
        if (blockIdx.x == 0) layer.h2[k] = h[j];
    }
    const float inverse = rsqrtf(block_sum(squares, partial) / HIDDEN + EPS);
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) x[threadIdx.x + j * THREADS] = h[j] * inverse;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < UNITS_A_WARP; i++) {
        const float gate_value = dot768(gate[i], x, lane);
        const float up_value = dot768(up[i], x, lane);
        if (lane == 0) g[warp + i * WARPS] = silu(gate_value) * up_value;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < HIDDEN / THREADS; j++) {
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < U; u++) sum = fmaf(bf16(w[u][j]), g[u], sum);
        add_fixed(layer.down_sums + threadIdx.x + j * THREADS, sum);
    }
}

// The chain's output: the last layer's h2 plus its down sums.
__global__ void finish(const Layer* last, float* output, unsigned long long* trace) {
    wait_for_previous();
    mark(trace);
    for (int k = threadIdx.x; k < HIDDEN; k += blockDim.x) output[k] = last->h2[k] + from_fixed(last->down_sums[k]);
}

__global__ void transpose_bf16(const unsigned short* in, unsigned short* out, int rows, int columns) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < rows * columns; i += gridDim.x * blockDim.x) {
        const int r = i / columns, c = i % columns;
        out[(size_t) c * rows + r] = in[i];
    }
}

template <typename Kernel, typename... Args>
static void launch(cudaStream_t stream, int blocks, Kernel kernel, Args... args) {
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(blocks);
    config.blockDim = dim3(THREADS);
    config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
    CHECK(cudaLaunchKernelEx(&config, kernel, args...));
}

template <int R, int U>
static void run(const std::vector<Layer>& layers, const Layer* device_layers, long long* sums, size_t sum_bytes,
        const float* input, float* output, unsigned long long* trace, const std::vector<double>& expected,
        int replays, cudaStream_t stream) {
    cudaGraph_t graph;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    CHECK(cudaMemsetAsync(sums, 0, sum_bytes, stream));
    for (int l = 0; l < LAYERS; l++) {
        launch(stream, IN_PROJ_BLOCKS, in_proj, layers[l], l == 0 ? (const Layer*) nullptr : device_layers + l - 1,
                input, trace + l * LAUNCHES_A_LAYER);
        launch(stream, HEADS * (HEAD_DIM / R), state_out<R>, layers[l], trace + l * LAUNCHES_A_LAYER + 1);
        launch(stream, FFN / U, mlp<U>, layers[l], trace + l * LAUNCHES_A_LAYER + 2);
    }
    launch(stream, 1, finish, device_layers + LAYERS - 1, output, trace + LAYERS * LAUNCHES_A_LAYER);
    CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (const Layer& layer : layers) CHECK(cudaMemset(layer.state, 0, (size_t) HEADS * HEAD_DIM * STATE * 4));
    CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    int weights;
    CHECK(cudaMemcpyFromSymbol(&weights, with_weights, sizeof(int)));
    if (weights) {
        char name[64];
        std::snprintf(name, sizeof name, "R %d, U %d", R, U);
        print_difference(output, expected, name);
    }
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    CHECK(cudaEventRecord(start, stream));
    for (int r = 0; r < replays; r++) CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaEventRecord(stop, stream));
    CHECK(cudaEventSynchronize(stop));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    std::vector<unsigned long long> marks(LAYERS * LAUNCHES_A_LAYER + 1);
    CHECK(cudaMemcpy(marks.data(), trace, marks.size() * 8, cudaMemcpyDeviceToHost));
    int at_start;
    CHECK(cudaMemcpyFromSymbol(&at_start, dependents_at_start, sizeof(int)));
    std::printf("%s, dependents at the %s, R %2d (%3d state blocks), U %2d (%3d mlp blocks): %.1f us a replay (%.2f a layer), first wait to last %.1f; "
            "median us a launch:",
            weights ? "weights   " : "no weights", at_start ? "start" : "wait ", R, HEADS * (HEAD_DIM / R), U, FFN / U, 1000.0f * ms / replays, 1000.0f * ms / replays / LAYERS,
            (marks.back() - marks[0]) / 1000.0);
    const char* names[LAUNCHES_A_LAYER] = {"in_proj", "state_out", "mlp"};
    for (int k = 0; k < LAUNCHES_A_LAYER; k++) {
        std::vector<double> spans;
        for (int l = 0; l < LAYERS; l++) spans.push_back((marks[l * LAUNCHES_A_LAYER + k + 1] - marks[l * LAUNCHES_A_LAYER + k]) / 1000.0);
        std::sort(spans.begin(), spans.end());
        std::printf(" %s %.2f", names[k], spans[LAYERS / 2]);
    }
    std::printf("\n");
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
}

int main(int argc, char** argv) {
    const int replays = argc > 1 ? std::atoi(argv[1]) : 40;
    cudaDeviceProp properties;
    CHECK(cudaGetDeviceProperties(&properties, 0));
    std::vector<std::vector<unsigned short>> host_weights(LAYERS * 4);
    std::vector<Layer> layers(LAYERS);
    long long* sums;
    const size_t sum_bytes = (size_t) LAYERS * (2 * HIDDEN + 1) * sizeof(long long);
    CHECK(cudaMalloc(&sums, sum_bytes));
    size_t weight_bytes = 0;
    for (int l = 0; l < LAYERS; l++) {
        unsigned short* matrices[4];
        for (int m = 0; m < 4; m++) {
            matrices[m] = random_matrix(l, m, host_weights[l * 4 + m]);
            weight_bytes += host_weights[l * 4 + m].size() * 2;
        }
        unsigned short *out_proj_t, *down_t;
        CHECK(cudaMalloc(&out_proj_t, (size_t) HIDDEN * INNER * 2));
        CHECK(cudaMalloc(&down_t, (size_t) HIDDEN * FFN * 2));
        transpose_bf16<<<1024, 256>>>(matrices[1], out_proj_t, HIDDEN, INNER);
        transpose_bf16<<<1024, 256>>>(matrices[3], down_t, HIDDEN, FFN);
        Layer& layer = layers[l];
        layer.in_proj = reinterpret_cast<const uint4*>(matrices[0]);
        layer.out_proj_t = out_proj_t;
        layer.gate_up = reinterpret_cast<const uint4*>(matrices[2]);
        layer.down_t = down_t;
        CHECK(cudaMalloc(&layer.state, (size_t) HEADS * HEAD_DIM * STATE * sizeof(float)));
        layer.out_sums = sums + (size_t) l * (2 * HIDDEN + 1);
        layer.down_sums = layer.out_sums + HIDDEN + 1;
        CHECK(cudaMalloc(&layer.h, HIDDEN * 4));
        CHECK(cudaMalloc(&layer.h2, HIDDEN * 4));
        CHECK(cudaMalloc(&layer.projected, PROJECTED * 4));
    }
    CHECK(cudaDeviceSynchronize());
    Layer* device_layers;
    CHECK(cudaMalloc(&device_layers, LAYERS * sizeof(Layer)));
    CHECK(cudaMemcpy(device_layers, layers.data(), LAYERS * sizeof(Layer), cudaMemcpyHostToDevice));
    std::vector<float> input(HIDDEN);
    for (int i = 0; i < HIDDEN; i++) input[i] = std::sin(0.37f * i) + 0.1f;
    float *device_input, *output;
    unsigned long long* trace;
    CHECK(cudaMalloc(&device_input, HIDDEN * 4));
    CHECK(cudaMalloc(&output, HIDDEN * 4));
    CHECK(cudaMalloc(&trace, (LAYERS * LAUNCHES_A_LAYER + 1) * 8));
    CHECK(cudaMemcpy(device_input, input.data(), HIDDEN * 4, cudaMemcpyHostToDevice));
    const std::vector<double> expected = reference(host_weights, input);
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::printf("%s, %d layers, %.1f MB of weights, three launches a layer\n", properties.name, LAYERS, weight_bytes / 1e6);
    for (int round = 0; round < 6; round++) {
        const int at_start = round % 2;
        const int weights = round < 4;
        CHECK(cudaMemcpyToSymbol(dependents_at_start, &at_start, sizeof(int)));
        CHECK(cudaMemcpyToSymbol(with_weights, &weights, sizeof(int)));
        run<16, 16>(layers, device_layers, sums, sum_bytes, device_input, output, trace, expected, replays, stream);
        run<8, 16>(layers, device_layers, sums, sum_bytes, device_input, output, trace, expected, replays, stream);
        run<32, 16>(layers, device_layers, sums, sum_bytes, device_input, output, trace, expected, replays, stream);
        run<16, 8>(layers, device_layers, sums, sum_bytes, device_input, output, trace, expected, replays, stream);
        run<16, 32>(layers, device_layers, sums, sum_bytes, device_input, output, trace, expected, replays, stream);
    }
    return 0;
}
