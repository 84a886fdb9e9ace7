// The sampling kernel (engine/src/main/cuda/sampling.cu) alone, on rows of 49160 logits: µs a launch
// (the mean of 50 launches back to back, after one untimed) and the token drawn, for each filter setting and several
// splits of a row between blocks, so that two builds of the kernel can be compared in one call on
// one card and their tokens checked against each other.
//
// Build it against the kernel source to measure (the current one, or an earlier one from git):
//   nvcc -O3 -std=c++17 -arch=sm_90a -cudart shared -I engine/src/main/cuda \
//       -DSAMPLING_SOURCE='"sampling.cu"' -o /tmp/sampling_kernel tools/bench/sampling_kernel.cu
//   git show REV:engine/src/main/cuda/sampling.cu > /tmp/old/sampling.cu  (with common.cuh beside it)
//   nvcc ... -I /tmp/old -DSAMPLING_SOURCE='"sampling.cu"' -o /tmp/sampling_kernel_old ...
// (add -DSAMPLING_WITHOUT_HOST_OUT for a kernel before it took host_out, such as ad8adf3's, and
// -DSAMPLING_WITHOUT_BEST_IDS for one before it took best_ids, such as 1cd3bb7's). A kernel that
// takes best_ids is also timed given each row's argmax ("best given"), as a serving step gives it.
// With -DSAMPLING_STAMPS (a kernel from this one on), each case drawn by 8 blocks also prints the
// µs between the kernel's stamped points in one more launch (labels: sampling.cu's COIL_SAMPLE_STAMP).
// Run: sampling_kernel [BATCH] [LOGITS_FILE]
//   BATCH (default 1): rows a launch, each the same logits; batch 1 is drawn by 1, 8 and 16 blocks
//   a row, larger batches by 1 and 2.
//   LOGITS_FILE (optional): 49160 little-endian f32 logits of one position, drawn as the
//   distribution "file" after the synthetic ones: Gaussian logits of spread 1, 3 and 6, and "peaked"
//   (spread 2 with 40 logits near 12, as a trained model's few likely tokens). docs/performance.md
//   used the serving benchmark's model (the random 304M Granite300mCheckpoint) at the last position
//   of a 128-token prompt, computed by the CPU backend: logits of spread 0.55, nearly flat.
// Settings: temperature 0.8 (1.0 for t1.0), uniform 0.5, and top-k 50, top-p 0.9 or 0.95, min-p
// 0.05, or all three.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>
#include <cuda_runtime.h>
#ifdef SAMPLING_STAMPS
// Points of one launch (block 0, thread 0), recorded as DecodeTrace's marks are (common.cuh's
// coil_trace_record: %globaltimer and the label), printed after each timed case.
#define COIL_SAMPLE_STAMP(label)                                                               \
    do {                                                                                       \
        if (threadIdx.x == 0 && blockIdx.x == 0) {                                             \
            coil_trace_record(label);                                                          \
        }                                                                                      \
    } while (0)
#endif
#include SAMPLING_SOURCE

#define CHECK(call)                                                                            \
    do {                                                                                       \
        cudaError_t status = (call);                                                           \
        if (status != cudaSuccess) {                                                           \
            printf("%s: %s\n", #call, cudaGetErrorString(status));                             \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

struct Setting {
    const char* name;
    int top_k;
    double temperature, top_p, min_p;
};

int main(int argc, char** argv) {
    const int vocab = 49160;
    const int batch = argc > 1 ? atoi(argv[1]) : 1;
    const char* logits_file = argc > 2 ? argv[2] : nullptr;
    const char* distributions[] = {"gauss1", "gauss3", "gauss6", "peaked", "file"};
    const Setting settings[] = {{"temp0.8", 0, 0.8, 1, 0}, {"topp0.95", 0, 0.8, 0.95, 0}, {"topp0.9", 0, 0.8, 0.9, 0},
            {"topk50", 50, 0.8, 1, 0}, {"minp0.05", 0, 0.8, 1, 0.05}, {"all", 50, 0.8, 0.9, 0.05},
            {"t1.0", 0, 1.0, 1, 0}};
    float* logits;
    float* weights;
    int* out;
    int* top_k;
    int* best_ids;
    double* row_settings;
    CHECK(cudaMalloc(&logits, (size_t) batch * vocab * 4));
    CHECK(cudaMalloc(&weights, (size_t) batch * vocab * 4));
    CHECK(cudaMalloc(&out, 4 * batch));
    CHECK(cudaMalloc(&top_k, 4 * batch));
    CHECK(cudaMalloc(&best_ids, 4 * batch));
    CHECK(cudaMalloc(&row_settings, 32 * batch));
    CHECK(cudaFuncSetAttribute(sampling_sample_f32, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    cudaStream_t stream;
    CHECK(cudaStreamCreate(&stream));
    cudaEvent_t start, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&end));
    std::mt19937_64 random(11);
    std::normal_distribution<double> normal;
    for (int d = 0; d < (logits_file != nullptr ? 5 : 4); d++) {
        std::vector<float> row(vocab);
        const double spread[] = {1, 3, 6, 2};
        for (int i = 0; i < vocab && d < 4; i++) {
            row[i] = (float) (spread[d] * normal(random));
        }
        if (d == 3) {
            for (int i = 0; i < 40; i++) {
                row[random() % vocab] = (float) (12 + 3 * normal(random));
            }
        }
        if (d == 4) {
            FILE* file = fopen(logits_file, "rb");
            if (file == nullptr || fread(row.data(), 4, vocab, file) != (size_t) vocab) {
                printf("%s: cannot read %d logits\n", logits_file, vocab);
                return 1;
            }
            fclose(file);
        }
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            best = row[i] > row[best] ? i : best;
        }
        for (int r = 0; r < batch; r++) {
            CHECK(cudaMemcpy(logits + (size_t) r * vocab, row.data(), vocab * 4, cudaMemcpyHostToDevice));
            CHECK(cudaMemcpy(best_ids + r, &best, 4, cudaMemcpyHostToDevice));
        }
        for (const Setting& setting : settings) {
            const double values[4] = {setting.temperature, setting.top_p, setting.min_p, 0.5};
            for (int r = 0; r < batch; r++) {
                CHECK(cudaMemcpy(row_settings + 4 * r, values, 32, cudaMemcpyHostToDevice));
                CHECK(cudaMemcpy(top_k + r, &setting.top_k, 4, cudaMemcpyHostToDevice));
            }
            // (blocks a row, whether the launch is given the rows' argmax)
            std::vector<std::pair<int, bool>> splits;
            for (int blocks : batch == 1 ? std::vector<int>{1, 8, 16} : std::vector<int>{1, 2}) {
                splits.push_back({blocks, false});
#ifndef SAMPLING_WITHOUT_BEST_IDS
                splits.push_back({blocks, true});
#endif
            }
            for (const std::pair<int, bool>& split : splits) {
                const int blocks = split.first;
                const bool given = split.second;
                cudaLaunchConfig_t config = {};
                config.gridDim = dim3(blocks * batch);
                config.blockDim = dim3(COIL_SAMPLE_THREADS);
                config.stream = stream;
                cudaLaunchAttribute cluster;
                cluster.id = cudaLaunchAttributeClusterDimension;
                cluster.val.clusterDim.x = blocks;
                cluster.val.clusterDim.y = 1;
                cluster.val.clusterDim.z = 1;
                config.attrs = &cluster;
                config.numAttrs = 1;
                auto launch = [&]() {
                    CHECK(cudaLaunchKernelEx(&config, sampling_sample_f32, (const float*) logits, vocab,
                            (const int*) top_k, (const double*) row_settings, weights, out, (int*) nullptr
#ifndef SAMPLING_WITHOUT_HOST_OUT
                            , (int*) nullptr
#endif
#ifndef SAMPLING_WITHOUT_BEST_IDS
                            , (const int*) (given ? best_ids : nullptr)
#endif
                            ));
                };
                launch();
                CHECK(cudaStreamSynchronize(stream));
                const int launches = 50;
                CHECK(cudaEventRecord(start, stream));
                for (int i = 0; i < launches; i++) {
                    launch();
                }
                CHECK(cudaEventRecord(end, stream));
                CHECK(cudaEventSynchronize(end));
                float milliseconds;
                CHECK(cudaEventElapsedTime(&milliseconds, start, end));
                int token;
                CHECK(cudaMemcpy(&token, out, 4, cudaMemcpyDeviceToHost));
                printf("%-7s %-9s blocks %2d%s: %7.1f us  token %d\n", distributions[d], setting.name, blocks,
                        given ? ", best given" : "", milliseconds * 1000 / launches, token);
#ifdef SAMPLING_STAMPS
                if (blocks == 8) {
                    const unsigned int zero = 0;
                    CHECK(cudaMemcpyToSymbol(coil_trace_next, &zero, 4));
                    launch();
                    CHECK(cudaStreamSynchronize(stream));
                    unsigned int count;
                    CHECK(cudaMemcpyFromSymbol(&count, coil_trace_next, 4));
                    count = count < 256 ? count : 256;
                    unsigned long long records[256][2];
                    CHECK(cudaMemcpyFromSymbol(records, coil_trace, count * sizeof records[0]));
                    printf("   stamps:");
                    for (unsigned int i = 1; i < count; i++) {
                        printf(" %llu:%.2f", records[i][1], (records[i][0] - records[i - 1][0]) / 1000.0);
                    }
                    printf("\n");
                }
#endif
            }
        }
    }
    return 0;
}
