// Times the CPU row kernels of Sources/CFusedNormCPU directly (no Swift, no thread pool): the harness behind the
// per-element numbers in docs/notes/cpu-*.md. Build and run with bench/cpu-rows/run.sh.
//
//   rows forward|backward DTYPE LAYER ROWS [REPEAT] [THREADS] [KERNELS] [PACKED]
//     DTYPE: float32 | float16 | bfloat16 (x, dy, y and dx; weight and bias float32 as the backend passes them)
//     LAYER: 1 LayerNorm (weight and bias), 0 RMSNorm (weight)
//     ROWS: rows of N = 4096 in the buffers; ROWS = 4 stays in cache, 16384 streams from memory
//     REPEAT: rows processed per timed run (default ROWS; with few ROWS, cycles over them)
//     THREADS: 1 or 2, each on its own half of the rows with its own dweight/dbias partials (default 1)
//     KERNELS: 1 AVX2 build, 2 AVX-512 build (0 or default: the best this CPU runs)
//     PACKED: LayerNorm forward of a 16-bit dtype: 1 weight and bias packed in that dtype too (cfn_pack_weight_bias,
//             as the backend passes them when they are exact in it), 0 as floats only (default 1)
// RESIDUAL=1 (forward): s = x + residual fused, the residual read from the dy buffer and s written to a buffer of
// its own (both of the rows' dtype).
// Prints the best of 7 timed runs: GB/s (x + y, or x + dy + dx, each moved once) and ns per element per thread.
// Inputs are uniform in [-2, 2) (dy in [-1, 1)); the backward uses saved statistics (mean 0.01, rstd 1.7).
//
// Round robin (bench/cpu-rows/variants.sh): with VARIANTS="LIB[:LAYER[:PACKED]] ..." (shared libraries of the
// kernels, each built from its own copy of the sources), the variants take turns, one timed run each per round
// (ROUNDS rounds, default 20, the first variant of each round rotating), so that the host's slow spells, which
// last seconds, fall on all of them alike. Prints each variant's min and median ns per element per thread, and
// the median (and quartiles) over the rounds of its time divided by the first variant's in the same round.
#include "CFusedNormCPU.h"
#include "Scalar.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dlfcn.h>

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
static int backward, dtype, layer, kernels, threads, packed, residual;
static uint16_t *weightBias, *packedRow;
// The kernels timed: this build's, or a variant's from its library (round robin).
static void (*forwardRow)(const cfn_forward_row_args *, int) = cfn_forward_row;
static void (*backwardRow)(const cfn_backward_row_args *, int) = cfn_backward_row;
static size_t rows, repeat, size;
static char *x, *dy, *out, *sums;
static float *weight, *bias, *partials[2];
_Alignas(64) static float means[2][16], rstds[2][16];  // a line per thread
_Alignas(64) static float stashes[2][N];

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
            backwardRow(&a, kernels);
        } else {
            cfn_forward_row_args a = {0};
            a.columns = N, a.centered = layer, a.x_dtype = a.output_dtype = dtype, a.hat_dtype = CFN_FLOAT32;
            a.x = x + r * N * size, a.output = out + r * N * size, a.weight = weight, a.bias = layer ? bias : NULL;
            a.epsilon = 1e-5f, a.next_x = x + next * N * size, a.weight_bias = weightBias;
            a.mean = &means[id][0], a.rstd = &rstds[id][0];  // as the backend saves them
            if (residual) {
                a.residual = dy + r * N * size, a.residual_dtype = a.residual_output_dtype = dtype;
                a.residual_output = sums + r * N * size, a.stash = stashes[id], a.next_residual = dy + next * N * size;
            }
            forwardRow(&a, kernels);
        }
    }
    cfn_store_fence();
    return NULL;
}

static double timedRun(void) {
    double start = now();
    pthread_t thread[2];
    for (size_t t = 0; t < (size_t)threads; t++) pthread_create(&thread[t], NULL, work, (void *)t);
    for (int t = 0; t < threads; t++) pthread_join(thread[t], NULL);
    return (now() - start) * threads / ((double)repeat * N) * 1e9;
}

static int compareDoubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// The round robin of the variants in `list` (see the top of the file).
static int roundRobin(const char *list) {
    enum { most = 8, mostRounds = 200 };
    char specs[4096], *names[most];
    int count = 0, layers[most], packs[most];
    void (*forwards[most])(const cfn_forward_row_args *, int);
    void (*backwards[most])(const cfn_backward_row_args *, int);
    snprintf(specs, sizeof specs, "%s", list);
    for (char *spec = strtok(specs, " ,"); spec && count < most; spec = strtok(NULL, " ,"), count++) {
        names[count] = spec;
        layers[count] = layer, packs[count] = packed;
        char library[1024];
        snprintf(library, sizeof library, "%s", spec);
        char *colon = strchr(library, ':');
        if (colon) *colon = 0, sscanf(colon + 1, "%d:%d", &layers[count], &packs[count]);
        void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (!handle) {
            fprintf(stderr, "rows: %s\n", dlerror());
            return 1;
        }
        forwards[count] = (void (*)(const cfn_forward_row_args *, int))dlsym(handle, "cfn_forward_row");
        backwards[count] = (void (*)(const cfn_backward_row_args *, int))dlsym(handle, "cfn_backward_row");
        if (!forwards[count] || !backwards[count]) {
            fprintf(stderr, "rows: %s lacks the row kernels\n", library);
            return 1;
        }
    }
    int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 20;
    if (count == 0 || rounds < 1 || rounds > mostRounds) {
        fprintf(stderr, "rows: VARIANTS names no library, or ROUNDS is not 1-%d\n", mostRounds);
        return 2;
    }
    static double times[most][mostRounds], ratios[most][mostRounds];
    for (int round = -1; round < rounds; round++) {  // round -1: warm-up, untimed
        for (int turn = 0; turn < count; turn++) {
            int v = (turn + (round < 0 ? 0 : round)) % count;
            forwardRow = forwards[v], backwardRow = backwards[v], layer = layers[v];
            weightBias = packs[v] && layer && !backward ? packedRow : NULL;
            double t = timedRun();
            if (round >= 0) times[v][round] = t;
        }
        for (int v = 0; round >= 0 && v < count; v++) ratios[v][round] = times[v][round] / times[0][round];
    }
    printf("%s %s rows=%zu repeat=%zu threads=%d kernels=%d, %d rounds: ns per element per thread\n", backward ? "backward" : "forward",
           dtype == CFN_FLOAT32 ? "float32" : dtype == CFN_FLOAT16 ? "float16" : "bfloat16", rows, repeat, threads, kernels, rounds);
    for (int v = 0; v < count; v++) {
        qsort(times[v], rounds, sizeof(double), compareDoubles);
        qsort(ratios[v], rounds, sizeof(double), compareDoubles);
        printf("  %-40s min %.4f median %.4f | against the first: median %.3f (quartiles %.3f %.3f)\n", names[v], times[v][0],
               times[v][rounds / 2], ratios[v][rounds / 2], ratios[v][rounds / 4], ratios[v][3 * rounds / 4]);
    }
    return 0;
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
    residual = !backward && getenv("RESIDUAL") && atoi(getenv("RESIDUAL"));
    sums = aligned_alloc(64, rows * N * size);
    if (!sums) return 1;
    memset(sums, 0, rows * N * size);
    x = aligned_alloc(64, rows * N * size), dy = aligned_alloc(64, rows * N * size), out = aligned_alloc(64, rows * N * size);
    weight = aligned_alloc(64, N * 4), bias = aligned_alloc(64, N * 4);
    if (!x || !dy || !out || !weight || !bias) return 1;
    fill(x, rows * N, 2), fill(dy, rows * N, 1), memset(out, 0, rows * N * size);
    for (int i = 0; i < N; i++) weight[i] = 1 + i * 1e-4f, bias[i] = 0.1f;
    if (dtype != CFN_FLOAT32) {
        // Parameters of the rows' dtype (as a model's), so that packing them is exact.
        for (int i = 0; i < N; i++) weight[i] = cfn_round1(weight[i], dtype), bias[i] = cfn_round1(bias[i], dtype);
        packedRow = weightBias = aligned_alloc(64, N * 4);
        if (!weightBias || !cfn_pack_weight_bias(weight, bias, N, dtype, weightBias)) return 1;
        if (!packed || !layer || backward) weightBias = NULL;
    }
    for (int t = 0; t < 2; t++) {
        partials[t] = aligned_alloc(4096, 2 * N * 4 + 4096);
        memset(partials[t], 0, 2 * N * 4 + 4096);
    }
    if (getenv("VARIANTS")) return roundRobin(getenv("VARIANTS"));
    double best = 1e9;  // ns per element per thread
    for (int run = 0; run < 7; run++) {
        double t = timedRun();
        if (t < best) best = t;
    }
    double seconds = best * ((double)repeat * N) / threads * 1e-9, moved = (backward ? 3.0 : 2.0) * repeat * N * size;
    printf("%s %s %s rows=%zu repeat=%zu threads=%d kernels=%d packed=%d: %.2f GB/s, %.3f ns/element/thread\n", argv[1], argv[2],
           layer ? "layernorm" : "rmsnorm", rows, repeat, threads, kernels, weightBias != NULL, moved / seconds / 1e9, best);
    return 0;
}
