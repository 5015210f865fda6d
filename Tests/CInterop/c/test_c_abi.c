// The C interface of FusedNorm (libFusedNormC.so) exercised from C: every operation against a float64
// reference on awkward shapes, strided rows and every dtype, written through the caller's own buffers
// (zero copy: the result is read back from the memory the caller owns, and the padding between strided
// rows is checked untouched); every bad descriptor gives a status and a message, never a crash; versions,
// CUDA query, prepare and DLPack import/export. Built and run by .ci/run against the release .so.
#include "fusednorm.h"
#include "dlpack.h"
#include "numbers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
// Copies the operations are expected to count: for an empty batch, a backward fills its parameter gradients
// with zeros (an upload of zeros, which the library counts as a copy).
static int64_t expected_copies = 0;

#define CHECK(condition, ...)                                                  \
    do {                                                                       \
        checks++;                                                              \
        if (!(condition)) {                                                    \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " [last error: %s]\n", fusednorm_last_error());   \
        }                                                                      \
    } while (0)

// ---------------------------------------------------------------------------------------------------------
// Caller-owned matrices: rows of `columns` elements, `row_stride` apart, the padding poisoned (0x7f bytes).

enum { POISON = 0x7f };

typedef struct {
    unsigned char *memory;
    size_t bytes;
    int64_t rows, columns, row_stride, groups;
    fusednorm_dtype dtype;
    fusednorm_tensor view;
} matrix;

// A (rows, columns) matrix, or (groups, rows / groups, columns) when groups > 1.
static matrix make_matrix(fusednorm_dtype dtype, int64_t groups, int64_t rows, int64_t columns, int64_t row_stride) {
    matrix m = {0};
    m.rows = rows, m.columns = columns, m.row_stride = row_stride, m.groups = groups, m.dtype = dtype;
    m.bytes = (size_t)((rows > 0 ? (rows - 1) * row_stride + columns : 0) + 8) * (size_t)fusednorm_dtype_size(dtype);
    m.memory = aligned_alloc(64, (m.bytes + 63) / 64 * 64);
    memset(m.memory, POISON, m.bytes);
    int64_t shape[3];
    if (groups > 1) {
        shape[0] = groups, shape[1] = rows / groups, shape[2] = columns;
        fusednorm_tensor_init(&m.view, m.memory, FUSEDNORM_DEVICE_CPU, 0, dtype, 3, shape);
        m.view.strides[0] = rows / groups * row_stride, m.view.strides[1] = row_stride;
    } else {
        shape[0] = rows, shape[1] = columns;
        fusednorm_tensor_init(&m.view, m.memory, FUSEDNORM_DEVICE_CPU, 0, dtype, 2, shape);
        m.view.strides[0] = row_stride;
    }
    return m;
}

static matrix make_vector(fusednorm_dtype dtype, int64_t weight_rows, int64_t columns) {
    matrix m = make_matrix(dtype, 1, weight_rows, columns, columns);
    if (weight_rows == 1) {  // shape (N)
        m.view.ndim = 1, m.view.shape[0] = columns, m.view.strides[0] = 1, m.view.shape[1] = m.view.strides[1] = 0;
    }
    return m;
}

static void set(matrix *m, int64_t row, int64_t column, double value) {
    store(m->memory, row * m->row_stride + column, m->dtype, value);
}

static double get(const matrix *m, int64_t row, int64_t column) {
    return load(m->memory, row * m->row_stride + column, m->dtype);
}

// Fills with values k/32, k in [-96, 96]: exact in every dtype, so the reference sees what is stored.
static void fill(matrix *m, unsigned *seed, double *copy) {
    for (int64_t i = 0; i < m->rows; i++)
        for (int64_t j = 0; j < m->columns; j++) {
            *seed = *seed * 1103515245u + 12345u;
            double value = (double)((int)((*seed >> 8) % 193) - 96) / 32.0;
            set(m, i, j, value);
            if (copy) copy[i * m->columns + j] = value;
        }
}

static void read_all(const matrix *m, double *out) {
    for (int64_t i = 0; i < m->rows; i++)
        for (int64_t j = 0; j < m->columns; j++) out[i * m->columns + j] = get(m, i, j);
}

// Whether every byte outside the rows' elements still holds the poison.
static int padding_untouched(const matrix *m) {
    int64_t size = fusednorm_dtype_size(m->dtype);
    for (int64_t i = 0; i + 1 < m->rows; i++)
        for (int64_t b = (i * m->row_stride + m->columns) * size; b < (i + 1) * m->row_stride * size; b++)
            if (m->memory[b] != POISON) return 0;
    return 1;
}

static void free_matrix(matrix *m) { free(m->memory); }

// ---------------------------------------------------------------------------------------------------------
// The float64 reference (REFERENCE.md): per row, statistics of s, then y; backward from the formulas.

static void reference_forward(
    int layer, const double *s, const double *w, const double *b, int64_t rows, int64_t n, int64_t weight_rows,
    double epsilon, double offset, int llama, fusednorm_dtype rounding, double *y, double *mean, double *rstd) {
    for (int64_t i = 0; i < rows; i++) {
        const double *row = s + i * n;
        double mu = 0, square = 0;
        if (layer) {
            for (int64_t j = 0; j < n; j++) mu += row[j];
            mu /= (double)n;
        }
        for (int64_t j = 0; j < n; j++) square += (row[j] - mu) * (row[j] - mu);
        double r = 1 / sqrt(square / (double)n + epsilon);
        if (mean) mean[i] = mu;
        if (rstd) rstd[i] = r;
        int64_t k = weight_rows > 0 ? i % weight_rows : 0;
        for (int64_t j = 0; j < n; j++) {
            double hat = (row[j] - mu) * r;
            if (llama) hat = round_to(rounding, hat);
            double weight = w ? (double)(float)(w[k * n + j] + offset) : 1 + offset;
            y[i * n + j] = hat * weight + (b ? b[k * n + j] : 0);
        }
    }
}

static void reference_backward(
    int layer, const double *dy, const double *x, const double *w, int64_t rows, int64_t n, int64_t weight_rows,
    double epsilon, double offset, const double *residual_gradient, double *dx, double *dw, double *db) {
    if (dw) memset(dw, 0, sizeof(double) * (size_t)(weight_rows * n));
    if (db) memset(db, 0, sizeof(double) * (size_t)(weight_rows * n));
    for (int64_t i = 0; i < rows; i++) {
        const double *row = x + i * n, *g_row = dy + i * n;
        double mu = 0, square = 0;
        if (layer) {
            for (int64_t j = 0; j < n; j++) mu += row[j];
            mu /= (double)n;
        }
        for (int64_t j = 0; j < n; j++) square += (row[j] - mu) * (row[j] - mu);
        double r = 1 / sqrt(square / (double)n + epsilon);
        int64_t k = weight_rows > 0 ? i % weight_rows : 0;
        double mean_g = 0, mean_gh = 0;
        for (int64_t j = 0; j < n; j++) {
            double weight = w ? (double)(float)(w[k * n + j] + offset) : 1 + offset;
            double g = g_row[j] * weight, hat = (row[j] - mu) * r;
            mean_g += g, mean_gh += g * hat;
        }
        mean_g /= (double)n, mean_gh /= (double)n;
        for (int64_t j = 0; j < n; j++) {
            double weight = w ? (double)(float)(w[k * n + j] + offset) : 1 + offset;
            double g = g_row[j] * weight, hat = (row[j] - mu) * r;
            dx[i * n + j] = r * (g - (layer ? mean_g : 0) - hat * mean_gh) + (residual_gradient ? residual_gradient[i * n + j] : 0);
            if (dw) dw[k * n + j] += g_row[j] * hat;
            if (db) db[k * n + j] += g_row[j];
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// One case: shape, dtypes, layout.

typedef struct {
    int64_t groups, rows, columns;
    fusednorm_dtype dtype;
    int strided;
} shape_case;

static void check_close(const char *what, const shape_case *c, const double *actual, const double *expected, int64_t count, double limit) {
    double error = relative_error(actual, expected, count);
    CHECK(error <= limit, "%s: %s (%lld x %lld, groups %lld, %s rows): relative error %.3g > %.3g", what,
          dtype_name(c->dtype), (long long)c->rows, (long long)c->columns, (long long)c->groups,
          c->strided ? "strided" : "contiguous", error, limit);
}

static void test_rms_norm(const shape_case *c, unsigned seed) {
    int64_t rows = c->rows, n = c->columns, count = rows * n;
    int64_t in_stride = c->strided ? n + 5 : n, out_stride = c->strided ? n + 3 : n;
    fusednorm_dtype other = c->dtype == FUSEDNORM_FLOAT32 ? FUSEDNORM_BFLOAT16 : FUSEDNORM_FLOAT32;
    int64_t weight_rows = c->groups > 1 ? rows / c->groups : 1;  // per-head weights for rank-3 inputs
    double *x = malloc(sizeof(double) * count), *r = malloc(sizeof(double) * count), *s = malloc(sizeof(double) * count);
    double *w = malloc(sizeof(double) * weight_rows * n), *y = malloc(sizeof(double) * count);
    double *expected = malloc(sizeof(double) * count), *rstd = malloc(sizeof(double) * rows);
    double *dy = malloc(sizeof(double) * count), *dw = malloc(sizeof(double) * weight_rows * n);
    double *got_dw = malloc(sizeof(double) * weight_rows * n), *expected_dw = malloc(sizeof(double) * weight_rows * n);

    matrix mx = make_matrix(c->dtype, c->groups, rows, n, in_stride), mr = make_matrix(other, c->groups, rows, n, in_stride);
    matrix mw = make_vector(c->dtype, weight_rows, n);
    fill(&mx, &seed, x), fill(&mr, &seed, r), fill(&mw, &seed, w);

    for (int variant = 0; variant < 3; variant++) {
        // 0: weight, standard casting, output in x's dtype. 1: Gemma offset, llama casting, fused residual,
        // float32 output (mixed dtypes), saved rstd. 2: weightless.
        int llama = variant == 1, residual = variant == 1;
        double offset = variant == 1 ? 1.0 : 0.0, epsilon = 1e-6;
        fusednorm_dtype out_dtype = variant == 1 ? FUSEDNORM_FLOAT32 : c->dtype;
        matrix my = make_matrix(out_dtype, c->groups, rows, n, out_stride);
        matrix ms = make_matrix(other, c->groups, rows, n, out_stride);
        matrix mrstd = make_matrix(FUSEDNORM_FLOAT32, 1, 1, rows > 0 ? rows : 1, rows > 0 ? rows : 1);
        mrstd.view.ndim = 1, mrstd.view.shape[0] = rows, mrstd.view.strides[0] = 1;
        if (c->groups > 1) {  // statistics shaped like x's leading dimensions
            mrstd.view.ndim = 2, mrstd.view.shape[0] = c->groups, mrstd.view.shape[1] = rows / c->groups;
            mrstd.view.strides[0] = rows / c->groups, mrstd.view.strides[1] = 1;
        }
        fusednorm_status status = fusednorm_rms_norm_forward(
            &mx.view, residual ? &mr.view : NULL, variant == 2 ? NULL : &mw.view, (float)epsilon, (float)offset,
            llama ? FUSEDNORM_CASTING_LLAMA : FUSEDNORM_CASTING_STANDARD, &my.view, residual ? &ms.view : NULL,
            variant == 1 ? &mrstd.view : NULL, NULL);
        CHECK(status == FUSEDNORM_SUCCESS, "rms_norm_forward variant %d: %s", variant, fusednorm_status_name(status));
        for (int64_t i = 0; i < count; i++) s[i] = residual ? round_to(other, x[i] + r[i]) : x[i];
        reference_forward(0, s, variant == 2 ? NULL : w, NULL, rows, n, weight_rows, epsilon, offset, llama,
                          residual ? other : c->dtype, expected, NULL, rstd);
        read_all(&my, y);
        char what[64];
        snprintf(what, sizeof what, "rms_norm_forward y (variant %d)", variant);
        // Under llama casting s^ is rounded twice in the reference (double -> dtype) and once in the kernel
        // (float -> dtype): near ties they may differ by an ulp of the rounding dtype.
        fusednorm_dtype rounding = residual ? other : c->dtype;
        check_close(what, c, y, expected, count, tolerance(out_dtype, llama) + (llama ? tolerance(rounding, 0) : 0));
        CHECK(padding_untouched(&my), "rms_norm_forward wrote between the rows of y");
        if (residual) {
            read_all(&ms, y);
            check_close("rms_norm_forward s", c, y, s, count, 0);
            double got[4096];
            for (int64_t i = 0; i < rows; i++) got[i] = ((float *)mrstd.memory)[i];
            check_close("rms_norm_forward rstd", c, got, rstd, rows, 1e-6);
        }
        free_matrix(&my), free_matrix(&ms), free_matrix(&mrstd);
    }

    // Backward with the weight, rstd recomputed, a residual gradient, dx in x's dtype, dweight in float32.
    matrix mdy = make_matrix(c->dtype, c->groups, rows, n, in_stride), mrg = make_matrix(FUSEDNORM_FLOAT32, c->groups, rows, n, n);
    fill(&mdy, &seed, dy), fill(&mrg, &seed, r);
    matrix mdx = make_matrix(c->dtype, c->groups, rows, n, out_stride), mdw = make_vector(FUSEDNORM_FLOAT32, weight_rows, n);
    fusednorm_status status = fusednorm_rms_norm_backward(
        &mdy.view, &mx.view, &mw.view, NULL, &mrg.view, 1e-6f, 0.5f, &mdx.view, &mdw.view, NULL);
    if (rows == 0) expected_copies += 1;
    CHECK(status == FUSEDNORM_SUCCESS, "rms_norm_backward: %s", fusednorm_status_name(status));
    reference_backward(0, dy, x, w, rows, n, weight_rows, 1e-6, 0.5, r, expected, expected_dw, NULL);
    read_all(&mdx, y);
    check_close("rms_norm_backward dx", c, y, expected, count, tolerance(c->dtype, 0));
    CHECK(padding_untouched(&mdx), "rms_norm_backward wrote between the rows of dx");
    read_all(&mdw, got_dw);
    check_close("rms_norm_backward dweight", c, got_dw, expected_dw, weight_rows * n, 1e-5);
    (void)dw;

    free_matrix(&mx), free_matrix(&mr), free_matrix(&mw), free_matrix(&mdy), free_matrix(&mrg), free_matrix(&mdx), free_matrix(&mdw);
    free(x), free(r), free(s), free(w), free(y), free(expected), free(rstd), free(dy), free(dw), free(got_dw), free(expected_dw);
}

static void test_layer_norm(const shape_case *c, unsigned seed) {
    int64_t rows = c->rows, n = c->columns, count = rows * n;
    int64_t in_stride = c->strided ? n + 7 : n, out_stride = c->strided ? n + 1 : n;
    double *x = malloc(sizeof(double) * count), *r = malloc(sizeof(double) * count), *s = malloc(sizeof(double) * count);
    double *w = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * count);
    double *expected = malloc(sizeof(double) * count), *mean = malloc(sizeof(double) * rows), *rstd = malloc(sizeof(double) * rows);
    double *dy = malloc(sizeof(double) * count), *expected_dw = malloc(sizeof(double) * n), *expected_db = malloc(sizeof(double) * n);
    double *got = malloc(sizeof(double) * (count > n ? count : n) + 8);

    matrix mx = make_matrix(c->dtype, c->groups, rows, n, in_stride), mr = make_matrix(c->dtype, c->groups, rows, n, in_stride);
    matrix mw = make_vector(c->dtype, 1, n), mb = make_vector(FUSEDNORM_FLOAT32, 1, n);
    fill(&mx, &seed, x), fill(&mr, &seed, r), fill(&mw, &seed, w), fill(&mb, &seed, b);
    matrix my = make_matrix(c->dtype, c->groups, rows, n, out_stride), ms = make_matrix(c->dtype, c->groups, rows, n, out_stride);
    matrix mmean = make_vector(FUSEDNORM_FLOAT32, 1, rows > 0 ? rows : 1), mrstd = make_vector(FUSEDNORM_FLOAT32, 1, rows > 0 ? rows : 1);
    mmean.view.shape[0] = mrstd.view.shape[0] = rows;

    fusednorm_status status = fusednorm_layer_norm_forward(
        &mx.view, &mr.view, &mw.view, &mb.view, 1e-5f, &my.view, &ms.view, &mmean.view, &mrstd.view, NULL);
    CHECK(status == FUSEDNORM_SUCCESS, "layer_norm_forward: %s", fusednorm_status_name(status));
    for (int64_t i = 0; i < count; i++) s[i] = round_to(c->dtype, x[i] + r[i]);
    reference_forward(1, s, w, b, rows, n, 1, 1e-5, 0, 0, c->dtype, expected, mean, rstd);
    read_all(&my, y);
    check_close("layer_norm_forward y", c, y, expected, count, tolerance(c->dtype, 0));
    CHECK(padding_untouched(&my) && padding_untouched(&ms), "layer_norm_forward wrote between rows");
    read_all(&ms, y);
    check_close("layer_norm_forward s", c, y, s, count, 0);
    read_all(&mmean, got);
    check_close("layer_norm_forward mean", c, got, mean, rows, 1e-6);
    read_all(&mrstd, got);
    check_close("layer_norm_forward rstd", c, got, rstd, rows, 1e-5);

    // Without residual, weight or bias: plain standardization.
    status = fusednorm_layer_norm_forward(&mx.view, NULL, NULL, NULL, 1e-5f, &my.view, NULL, NULL, NULL, NULL);
    CHECK(status == FUSEDNORM_SUCCESS, "layer_norm_forward (weightless): %s", fusednorm_status_name(status));
    reference_forward(1, x, NULL, NULL, rows, n, 1, 1e-5, 0, 0, c->dtype, expected, NULL, NULL);
    read_all(&my, y);
    check_close("layer_norm_forward y (weightless)", c, y, expected, count, tolerance(c->dtype, 0));

    // Backward from the saved statistics of s; dbias without the bias's values, both gradients in float32.
    matrix mdy = make_matrix(c->dtype, c->groups, rows, n, in_stride), mdx = make_matrix(FUSEDNORM_FLOAT32, c->groups, rows, n, out_stride);
    matrix mdw = make_vector(FUSEDNORM_FLOAT32, 1, n), mdb = make_vector(FUSEDNORM_FLOAT32, 1, n);
    fill(&mdy, &seed, dy);
    status = fusednorm_layer_norm_backward(
        &mdy.view, &ms.view, &mw.view, &mmean.view, &mrstd.view, NULL, 1e-5f, &mdx.view, &mdw.view, &mdb.view, NULL);
    if (rows == 0) expected_copies += 2;
    CHECK(status == FUSEDNORM_SUCCESS, "layer_norm_backward: %s", fusednorm_status_name(status));
    reference_backward(1, dy, s, w, rows, n, 1, 1e-5, 0, NULL, expected, expected_dw, expected_db);
    read_all(&mdx, y);
    check_close("layer_norm_backward dx", c, y, expected, count, 1e-5);
    CHECK(padding_untouched(&mdx), "layer_norm_backward wrote between the rows of dx");
    read_all(&mdw, got);
    check_close("layer_norm_backward dweight", c, got, expected_dw, n, 1e-5);
    read_all(&mdb, got);
    check_close("layer_norm_backward dbias", c, got, expected_db, n, 1e-5);

    free_matrix(&mx), free_matrix(&mr), free_matrix(&mw), free_matrix(&mb), free_matrix(&my), free_matrix(&ms);
    free_matrix(&mmean), free_matrix(&mrstd), free_matrix(&mdy), free_matrix(&mdx), free_matrix(&mdw), free_matrix(&mdb);
    free(x), free(r), free(s), free(w), free(b), free(y), free(expected), free(mean), free(rstd), free(dy);
    free(expected_dw), free(expected_db), free(got);
}

#include "bad_descriptors.h"

int main(void) {
    printf("libFusedNormC %s (%d), header %d\n", fusednorm_version(), fusednorm_version_number(), FUSEDNORM_VERSION_NUMBER);
    CHECK(fusednorm_version_number() == FUSEDNORM_VERSION_NUMBER, "library and header versions differ");

    const fusednorm_dtype dtypes[] = {FUSEDNORM_FLOAT32, FUSEDNORM_FLOAT16, FUSEDNORM_BFLOAT16};
    const shape_case shapes[] = {
        {1, 1, 1, 0, 0}, {1, 3, 7, 0, 1}, {1, 5, 33, 0, 0}, {1, 4, 33, 0, 1}, {2, 6, 129, 0, 1},
        {1, 7, 1000, 0, 1}, {1, 3, 4097, 0, 0}, {1, 0, 8, 0, 0},
    };
    unsigned seed = 1;
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            shape_case c = shapes[k];
            c.dtype = dtypes[d];
            test_rms_norm(&c, seed++);
            test_layer_norm(&c, seed++);
        }
    // Zero copy, asserted by the library's own counters: every call above wrote into the caller's buffers.
    int64_t allocations = -1, copies = -1;
    CHECK(fusednorm_memory_counters(&allocations, &copies) == FUSEDNORM_SUCCESS, "memory counters");
    CHECK(allocations == 0 && copies == expected_copies, "the operations allocated %lld tensors and copied %lld (expected 0 and %lld)",
          (long long)allocations, (long long)copies, (long long)expected_copies);
    test_bad_descriptors();
    test_grouped_rows();
    test_counted_temporary();
    test_devices_and_prepare();
    test_dlpack();
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
