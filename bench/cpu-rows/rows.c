// Times the CPU row kernels of Sources/CFusedNormCPU directly (no Swift, no thread pool): the harness behind the
// per-element numbers in NOTES.md ("CPU backend, session 4"). Build and run with bench/cpu-rows/run.sh.
//
//   rows forward|backward DTYPE LAYER ROWS [REPEAT] [THREADS] [KERNELS]
//     DTYPE: float32 | float16 | bfloat16 (x, dy, y and dx; weight and bias float32 as the backend passes them)
//     LAYER: 1 LayerNorm (weight and bias), 0 RMSNorm (weight)
//     ROWS: rows of N = 4096 in the buffers; ROWS = 4 stays in cache, 16384 streams from memory
//     REPEAT: rows processed per timed run (default ROWS; with few ROWS, cycles over them)
//     THREADS: 1 or 2, each on its own half of the rows with its own dweight/dbias partials (default 1)
//     KERNELS: 1 AVX2 build, 2 AVX-512 build (0 or default: the best this CPU runs)
//     PACKED: LayerNorm forward of a 16-bit dtype: 1 weight and bias packed in that dtype too (cfn_pack_weight_bias,
//             as the backend passes them when they are exact in it), 0 as floats only (default 1)
// Prints the best of 7 timed runs: GB/s (x + y, or x + dy + dx, each moved once) and ns per element per thread.
// Inputs are uniform in [-2, 2) (dy in [-1, 1)); the backward uses saved statistics (mean 0.01, rstd 1.7).
#include "CFusedNormCPU.h"
#include "Scalar.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Row length: 4096 unless built with -DROWS_N=... (run.sh and ab.sh pass $CFLAGS on).
#ifndef ROWS_N
#define ROWS_N 4096
#endif
enum { N = ROWS_N };
static int backward, dtype, layer, kernels, threads, packed;
static uint16_t *weightBias;
static size_t rows, repeat, size;
static char *x, *dy, *out;
static float *weight, *bias, *partials[2];

static void fill(char *row, size_t count, float scale) {
    for (size_t i = 0; i < count; i++) {
        float v = (rand() / (float)RAND_MAX * 2 - 1) * scale;
        if (dtype == CFN_FLOAT32) ((float *)row)[i] = v;
        else if (dtype == CFN_BFLOAT16) cfn_f32_to_bf16(&v, (uint16_t *)row + i, 1);
        else cfn_f32_to_f16(&v, (uint16_t *)row + i, 1);
    }
}

static void *work(void *argument) {
    size_t id = (size_t)argument, first = rows * id / threads, end = rows * (id + 1) / threads, span = end - first;
    for (size_t t = 0; t < repeat / threads; t++) {
        size_t r = first + t % span, next = first + (t + 1) % span;
        if (backward) {
            cfn_backward_row_args a = {0};
            a.columns = N, a.centered = layer, a.x_dtype = a.dy_dtype = a.dx_dtype = dtype;
            a.x = x + r * N * size, a.dy = dy + r * N * size, a.dx = out + r * N * size;
            a.weight = weight, a.statistics_saved = 1, a.mean = layer ? 0.01f : 0, a.rstd = 1.7f;
            a.weight_gradient = partials[id], a.bias_gradient = layer ? partials[id] + N + 16 : NULL;
            a.next_x = x + next * N * size, a.next_dy = dy + next * N * size;
            cfn_backward_row(&a, kernels);
        } else {
            cfn_forward_row_args a = {0};
            a.columns = N, a.centered = layer, a.x_dtype = a.output_dtype = dtype, a.hat_dtype = CFN_FLOAT32;
            a.x = x + r * N * size, a.output = out + r * N * size, a.weight = weight, a.bias = layer ? bias : NULL;
            a.epsilon = 1e-5f, a.next_x = x + next * N * size, a.weight_bias = weightBias;
            cfn_forward_row(&a, kernels);
        }
    }
    cfn_store_fence();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: rows forward|backward float32|float16|bfloat16 LAYER ROWS [REPEAT] [THREADS] [KERNELS] [PACKED]\n");
        return 2;
    }
    backward = strcmp(argv[1], "backward") == 0;
    dtype = strcmp(argv[2], "float32") == 0 ? CFN_FLOAT32 : strcmp(argv[2], "float16") == 0 ? CFN_FLOAT16 : CFN_BFLOAT16;
    layer = atoi(argv[3]);
    rows = strtoull(argv[4], NULL, 10);
    repeat = argc > 5 ? strtoull(argv[5], NULL, 10) : rows;
    threads = argc > 6 ? atoi(argv[6]) : 1;
    kernels = argc > 7 && atoi(argv[7]) ? atoi(argv[7]) : cfn_row_kernels();
    packed = argc > 8 ? atoi(argv[8]) : 1;
    if (rows < 2 || repeat < rows || (threads != 1 && threads != 2) || kernels < CFN_KERNELS_AVX2 ||
        kernels > cfn_row_kernels()) {
        fprintf(stderr, "rows: bad arguments, or this CPU lacks the kernels asked for\n");
        return 2;
    }
    size = dtype == CFN_FLOAT32 ? 4 : 2;
    x = aligned_alloc(64, rows * N * size), dy = aligned_alloc(64, rows * N * size), out = aligned_alloc(64, rows * N * size);
    weight = aligned_alloc(64, N * 4), bias = aligned_alloc(64, N * 4);
    if (!x || !dy || !out || !weight || !bias) return 1;
    fill(x, rows * N, 2), fill(dy, rows * N, 1), memset(out, 0, rows * N * size);
    for (int i = 0; i < N; i++) weight[i] = 1 + i * 1e-4f, bias[i] = 0.1f;
    if (dtype != CFN_FLOAT32) {
        // Parameters of the rows' dtype (as a model's), so that packing them is exact.
        for (int i = 0; i < N; i++) weight[i] = cfn_round1(weight[i], dtype), bias[i] = cfn_round1(bias[i], dtype);
        weightBias = aligned_alloc(64, N * 4);
        if (!weightBias || !cfn_pack_weight_bias(weight, bias, N, dtype, weightBias)) return 1;
        if (!packed || !layer || backward) weightBias = NULL;
    }
    for (int t = 0; t < 2; t++) {
        partials[t] = aligned_alloc(4096, 2 * N * 4 + 4096);
        memset(partials[t], 0, 2 * N * 4 + 4096);
    }
    double best = 1e9;
    for (int run = 0; run < 7; run++) {
        double start = now();
        pthread_t thread[2];
        for (size_t t = 0; t < (size_t)threads; t++) pthread_create(&thread[t], NULL, work, (void *)t);
        for (int t = 0; t < threads; t++) pthread_join(thread[t], NULL);
        double seconds = now() - start;
        if (seconds < best) best = seconds;
    }
    double moved = (backward ? 3.0 : 2.0) * repeat * N * size;
    printf("%s %s %s rows=%zu repeat=%zu threads=%d kernels=%d packed=%d: %.2f GB/s, %.3f ns/element/thread\n", argv[1], argv[2],
           layer ? "layernorm" : "rmsnorm", rows, repeat, threads, kernels, weightBias != NULL, moved / best / 1e9,
           best * threads / ((double)repeat * N) * 1e9);
    return 0;
}
