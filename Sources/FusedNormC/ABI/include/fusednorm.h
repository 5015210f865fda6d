/*
 * fusednorm.h -- the C interface of FusedNorm (libFusedNormC.so).
 *
 * Fused RMSNorm and LayerNorm, forward and backward, on the CPU and on NVIDIA GPUs, over memory the caller
 * owns. Written for C and for Python's ctypes: plain structs with fixed-size arrays, int32 enums, no
 * callbacks, no allocation of tensors by the library.
 *
 * Conventions (every function):
 *   - Returns a fusednorm_status; FUSEDNORM_SUCCESS (0) or an error code. On an error,
 *     fusednorm_last_error() gives the whole message for the calling thread, and no output has been
 *     written when the error is found while checking the arguments (every descriptor is checked before any
 *     work starts). No C++ exception, Swift error or trap leaves the library for a bad argument.
 *   - Tensors are passed as `const fusednorm_tensor *` descriptors of the caller's memory. The caller
 *     provides every output; nothing is allocated for the caller. Optional inputs and outputs are NULL.
 *   - All tensors of one call live on one device. CPU calls return when the results are written. CUDA
 *     calls return once the work is queued on `stream` (a CUstream of the tensors' device, valid in its
 *     primary context; NULL: FusedNorm's own stream for that device); `stream` is ignored for CPU tensors.
 *     On the caller's stream every allocation, free and copy of the call is queued there too and nothing
 *     waits for the GPU, so calls can be captured into a CUDA graph (after fusednorm_prepare).
 *   - Arithmetic and statistics run in float32 whatever the storage dtypes; each tensor may have its own
 *     dtype (mixed dtypes: e.g. bf16 activations and an fp32 residual stream).
 *   - Descriptors and the memory they describe are only used during the call; nothing is retained.
 *
 * Layout of a tensor (see fusednorm_tensor): the last dimension (N, the columns) is normalized and must be
 * contiguous (stride 1). The leading dimensions are the rows. Their strides must collapse into
 *   - one level: row i starts at i * row_stride (contiguous, or every k-th row, or a column slice of a wider
 *     tensor), or
 *   - two levels (grouped rows): the rows of the second-to-last dimension row_stride apart, the dimensions
 *     before it collapsing into groups group_stride apart, e.g. the (T, H, D) q or k view of a fused
 *     (T, 3*H*D) qkv projection: heads D apart, tokens 3*H*D apart. CPU only in this version (CUDA:
 *     FUSEDNORM_UNSUPPORTED).
 * Dimensions of size 1 may have any stride. Strides are in elements and must not be negative. Rows must not
 * overlap: one level, row_stride >= N; two levels, with a the smaller of row_stride and group_stride (na rows
 * or groups at that stride) and b the larger, a >= N and b >= (na - 1) * a + N. More levels or a strided
 * last dimension: FUSEDNORM_UNSUPPORTED.
 */
#ifndef FUSEDNORM_H
#define FUSEDNORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; fusednorm_version_number() gives the library's. */
#define FUSEDNORM_VERSION_MAJOR 0
#define FUSEDNORM_VERSION_MINOR 1
#define FUSEDNORM_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define FUSEDNORM_VERSION_NUMBER (FUSEDNORM_VERSION_MAJOR * 10000 + FUSEDNORM_VERSION_MINOR * 100 + FUSEDNORM_VERSION_PATCH)

/* The most dimensions a descriptor holds. */
#define FUSEDNORM_MAX_DIMS 8

/* ---- Codes ------------------------------------------------------------------------------------------- */

/* What a call returns. */
typedef int32_t fusednorm_status;
enum {
    FUSEDNORM_SUCCESS = 0,
    /* A descriptor or argument is malformed or does not fit the operation (shape, dtype, device, NULL). */
    FUSEDNORM_INVALID_ARGUMENT = 1,
    /* Well-formed but not supported: a layout the kernels cannot express, a dtype or device FusedNorm
       does not handle, a DLPack tensor with lanes != 1, ... */
    FUSEDNORM_UNSUPPORTED = 2,
    /* The device cannot be used (no driver, no NVRTC, no such GPU) or a CUDA call failed. */
    FUSEDNORM_DEVICE_ERROR = 3,
    /* Memory for FusedNorm's own temporaries (or the metadata of an export) could not be allocated. */
    FUSEDNORM_OUT_OF_MEMORY = 4,
    /* A bug in FusedNorm; the message says where. */
    FUSEDNORM_INTERNAL = 5
};

/* Where memory lives: DLPack's DLDeviceType codes. */
typedef int32_t fusednorm_device_type;
enum {
    FUSEDNORM_DEVICE_CPU = 1,
    FUSEDNORM_DEVICE_CUDA = 2
};

/* Storage types. 0 is no dtype (an absent tensor in fusednorm_prepare_request). */
typedef int32_t fusednorm_dtype;
enum {
    FUSEDNORM_DTYPE_NONE = 0,
    FUSEDNORM_FLOAT32 = 1,
    FUSEDNORM_FLOAT16 = 2,
    FUSEDNORM_BFLOAT16 = 3
};

/* Where RMSNorm rounds to the storage dtype (with s^ = s * rstd, w' = w + weight_offset). */
typedef int32_t fusednorm_casting;
enum {
    /* One rounding at the end: y = round(s^ * w'). The most accurate; GemmaRMSNorm, torch.nn.RMSNorm. */
    FUSEDNORM_CASTING_STANDARD = 0,
    /* Two roundings: y = round(round_x(s^) * w'), s^ first rounded to x's dtype; LlamaRMSNorm. */
    FUSEDNORM_CASTING_LLAMA = 1
};

/* fusednorm_tensor.flags */
enum {
    /* The memory must not be written (e.g. a read-only DLPack tensor). As an output: FUSEDNORM_INVALID_ARGUMENT. */
    FUSEDNORM_TENSOR_READ_ONLY = 1
};

/* ---- Tensor descriptor ------------------------------------------------------------------------------- */

/* A view of memory the caller owns (160 bytes, no pointers besides `data`). Element (i0, ..., i[ndim-1]) is at
   data + (sum_k i_k * strides[k]) * element size. Entries at and after ndim are ignored (keep them 0). */
typedef struct fusednorm_tensor {
    /* The element at index (0, ..., 0): a host pointer, or a CUdeviceptr for CUDA. Aligned to the dtype's
       size. May be NULL only when the tensor has no elements. */
    void *data;
    /* FUSEDNORM_DEVICE_CPU or FUSEDNORM_DEVICE_CUDA. */
    fusednorm_device_type device_type;
    /* CUDA device ordinal (as in cuDeviceGet / torch.device("cuda", i)); 0 for the CPU. */
    int32_t device_index;
    /* FUSEDNORM_FLOAT32, FUSEDNORM_FLOAT16 or FUSEDNORM_BFLOAT16. */
    fusednorm_dtype dtype;
    /* 1 ... FUSEDNORM_MAX_DIMS. */
    int32_t ndim;
    /* FUSEDNORM_TENSOR_* bits. */
    uint32_t flags;
    /* Must be 0. */
    uint32_t reserved;
    /* Sizes; >= 0, the last >= 1. */
    int64_t shape[FUSEDNORM_MAX_DIMS];
    /* Strides in elements (not bytes), >= 0; the last must be 1 (unless its size is 1). */
    int64_t strides[FUSEDNORM_MAX_DIMS];
} fusednorm_tensor;

/* Fills `tensor` with a contiguous row-major descriptor of `data` (strides[k] = shape[k+1] * ... *
   shape[ndim-1], flags 0). Checks ndim and the sizes. */
fusednorm_status fusednorm_tensor_init(
    fusednorm_tensor *tensor, void *data, fusednorm_device_type device_type, int32_t device_index,
    fusednorm_dtype dtype, int32_t ndim, const int64_t *shape);

/* Checks a descriptor the way every operation does (layout, dtype, device, alignment) without running
   anything. Returns FUSEDNORM_SUCCESS or the error an operation would give, message included. */
fusednorm_status fusednorm_tensor_check(const fusednorm_tensor *tensor);

/* The size in bytes of one element of `dtype`; 0 for an unknown dtype. */
int32_t fusednorm_dtype_size(fusednorm_dtype dtype);

/* ---- Errors and versions ----------------------------------------------------------------------------- */

/*
 * The message of the last call on this thread that failed ("" when none has), e.g.
 * "fusednorm_rms_norm_forward: output has shape [4, 7], expected [4, 8] (the shape of x)".
 * The string belongs to the library and stays valid until the next failing call on this thread.
 */
const char *fusednorm_last_error(void);

/* The name of a status code, e.g. "FUSEDNORM_INVALID_ARGUMENT"; "unknown status" for others. Static. */
const char *fusednorm_status_name(fusednorm_status status);

/* The library's version, e.g. "0.1.0". Static string. */
const char *fusednorm_version(void);

/* The library's version as MAJOR * 10000 + MINOR * 100 + PATCH; compare with FUSEDNORM_VERSION_NUMBER. */
int32_t fusednorm_version_number(void);

/* Tensor memory the operations allocated and tensor data they copied since the library was loaded (all
   threads): both stay 0 when every output is given (zero copy). Backend working memory is not counted. */
fusednorm_status fusednorm_memory_counters(int64_t *allocations, int64_t *copies);

/* ---- RMSNorm ----------------------------------------------------------------------------------------- */

/*
 * RMSNorm forward, optionally with the residual add of a pre-norm block fused in:
 *     s = x + residual (rounded to residual_output's dtype), or s = x without a residual;
 *     rstd = 1 / sqrt(mean(s^2) + epsilon);   y = s * rstd * (w + weight_offset), rounded per `casting`.
 *
 * - x: (..., N).
 * - residual: NULL, or x's shape (any dtype); when given, residual_output is required.
 * - weight: NULL (w = 1), (N), or (H, N) per head when x is (..., H, N).
 * - epsilon: finite, > 0 (typically 1e-6). weight_offset: finite; 0, or 1 for Gemma (weights stored as w - 1).
 * - casting: FUSEDNORM_CASTING_STANDARD or FUSEDNORM_CASTING_LLAMA.
 * - output: y, required, x's shape; its dtype is the output dtype. Written, never read.
 * - residual_output: s, x's shape; required with a residual, NULL without. May be the residual itself
 *   (the stream updated in place).
 * - rstd_output: NULL, or float32 of x's leading shape (or (rows)), contiguous: the saved statistics for
 *   fusednorm_rms_norm_backward.
 * - stream: a CUstream, or NULL (see the conventions above).
 */
fusednorm_status fusednorm_rms_norm_forward(
    const fusednorm_tensor *x, const fusednorm_tensor *residual, const fusednorm_tensor *weight,
    float epsilon, float weight_offset, fusednorm_casting casting,
    const fusednorm_tensor *output, const fusednorm_tensor *residual_output, const fusednorm_tensor *rstd_output,
    void *stream);

/*
 * RMSNorm backward. With s^ = s * rstd and g = dy * (w + weight_offset):
 *     dx = rstd * (g - s^ * mean(g * s^)) (+ residual_gradient);   dweight = sum over rows of dy * s^
 * (float32 accumulation in a fixed order: bit-identical from run to run), written (not accumulated).
 *
 * - output_gradient: dy, the shape of input.
 * - input: the tensor that was normalized (s when a residual was fused).
 * - weight: as in the forward call (NULL for weightless RMSNorm).
 * - rstd: NULL (recomputed from input), or the forward call's rstd_output.
 * - residual_gradient: NULL, or the gradient reaching s from downstream (input's shape); added to dx.
 *   With a fused residual, dx is also the gradient of the residual.
 * - epsilon, weight_offset: as in the forward call.
 * - input_gradient: dx, required, input's shape, any dtype.
 * - weight_gradient: NULL (not kept: with a weight, FusedNorm computes it into a temporary it frees), or
 *   dweight: the weight's shape, any dtype (e.g. float32 for a bf16 weight). Needs a weight.
 */
fusednorm_status fusednorm_rms_norm_backward(
    const fusednorm_tensor *output_gradient, const fusednorm_tensor *input, const fusednorm_tensor *weight,
    const fusednorm_tensor *rstd, const fusednorm_tensor *residual_gradient, float epsilon, float weight_offset,
    const fusednorm_tensor *input_gradient, const fusednorm_tensor *weight_gradient, void *stream);

/* ---- LayerNorm --------------------------------------------------------------------------------------- */

/*
 * LayerNorm forward, optionally with a fused residual add (s = x + residual, as for RMSNorm):
 *     mean = mean(s);  rstd = 1 / sqrt(var(s) + epsilon);  y = (s - mean) * rstd * w + b, one rounding.
 *
 * - weight, bias: NULL (w = 1, b = 0), (N), or (H, N) per head; when both are given, the same shape.
 * - epsilon: finite, > 0 (typically 1e-5).
 * - output, residual_output: as for RMSNorm.
 * - mean_output, rstd_output: both NULL, or both float32 of x's leading shape (or (rows)), contiguous:
 *   the saved statistics for fusednorm_layer_norm_backward. One without the other: FUSEDNORM_INVALID_ARGUMENT.
 */
fusednorm_status fusednorm_layer_norm_forward(
    const fusednorm_tensor *x, const fusednorm_tensor *residual, const fusednorm_tensor *weight,
    const fusednorm_tensor *bias, float epsilon,
    const fusednorm_tensor *output, const fusednorm_tensor *residual_output,
    const fusednorm_tensor *mean_output, const fusednorm_tensor *rstd_output, void *stream);

/*
 * LayerNorm backward. With s^ = (s - mean) * rstd and g = dy * w:
 *     dx = rstd * (g - mean(g) - s^ * mean(g * s^)) (+ residual_gradient);
 *     dweight = sum over rows of dy * s^;   dbias = sum over rows of dy   (float32, fixed order, written).
 *
 * - mean, rstd: both NULL (recomputed from input) or both the forward call's outputs.
 * - weight: as in the forward call (NULL: w = 1). The bias is not needed: dbias does not depend on it.
 * - weight_gradient: NULL (not kept, as for RMSNorm), or dweight (the weight's shape, any dtype); needs a weight.
 * - bias_gradient: NULL, or dbias: (N), or (H, N) per head (the weight's shape when a weight is given),
 *   any dtype.
 * - Other arguments as for fusednorm_rms_norm_backward.
 */
fusednorm_status fusednorm_layer_norm_backward(
    const fusednorm_tensor *output_gradient, const fusednorm_tensor *input, const fusednorm_tensor *weight,
    const fusednorm_tensor *mean, const fusednorm_tensor *rstd, const fusednorm_tensor *residual_gradient,
    float epsilon, const fusednorm_tensor *input_gradient, const fusednorm_tensor *weight_gradient,
    const fusednorm_tensor *bias_gradient, void *stream);

/* ---- Devices and warm-up ----------------------------------------------------------------------------- */

/* What `fusednorm info` prints about CUDA. Strings are NUL-terminated, "" when unknown. */
typedef struct fusednorm_cuda_info {
    /* 1 when CUDA tensors can be used, else 0 and `problem` says why. */
    int32_t usable;
    /* CUDA devices the driver reports (0 without a driver). */
    int32_t device_count;
    /* e.g. "13.0". */
    char driver_version[32];
    char nvrtc_version[32];
    /* The NVRTC library loaded (set FUSEDNORM_NVRTC to choose it). */
    char nvrtc_path[512];
    /* Where compiled kernels are cached on disk (FUSEDNORM_KERNEL_CACHE). */
    char kernel_cache_directory[512];
    /* Why CUDA is not usable: no driver, no NVRTC, no device. */
    char problem[1024];
} fusednorm_cuda_info;

/* One CUDA device. */
typedef struct fusednorm_cuda_device {
    int32_t index;
    int32_t compute_capability_major;
    int32_t compute_capability_minor;
    int32_t multiprocessor_count;
    /* Total memory in bytes. */
    int64_t memory_bytes;
    char name[256];
} fusednorm_cuda_device;

/* Probes the CUDA driver and NVRTC (once per process; later calls give the same answer). Never fails for
   a missing GPU: `usable` is 0 then. FUSEDNORM_INVALID_ARGUMENT only for a NULL `info`. */
fusednorm_status fusednorm_cuda_query(fusednorm_cuda_info *info);

/* Describes device `index` (0 ... device_count - 1). */
fusednorm_status fusednorm_cuda_device_query(int32_t index, fusednorm_cuda_device *device);

/* Operations, for fusednorm_prepare_request.operation. */
typedef int32_t fusednorm_operation;
enum {
    FUSEDNORM_RMS_NORM_FORWARD = 1,
    FUSEDNORM_RMS_NORM_BACKWARD = 2,
    FUSEDNORM_LAYER_NORM_FORWARD = 3,
    FUSEDNORM_LAYER_NORM_BACKWARD = 4
};

/* fusednorm_prepare_request.flags */
enum {
    /* Forward: statistics are saved (rstd_output, and mean_output for LayerNorm).
       Backward: the saved statistics are given (rstd, and mean for LayerNorm). */
    FUSEDNORM_PREPARE_STATISTICS = 1,
    /* Backward: a residual_gradient is given. */
    FUSEDNORM_PREPARE_RESIDUAL_GRADIENT = 2
};

/*
 * One call to compile ahead of time: the dtypes and sizes of a call's tensors, without memory. Kernels are
 * specialized on these (and on the alignment of the addresses: this assumes 16-byte aligned rows), and the
 * launch plan on the row count, so prepare each row count a CUDA graph will capture.
 */
typedef struct fusednorm_prepare_request {
    fusednorm_operation operation;
    /* FUSEDNORM_DEVICE_CUDA (FUSEDNORM_DEVICE_CPU: nothing to compile, succeeds). */
    fusednorm_device_type device_type;
    int32_t device_index;
    /* Backward: casting is ignored. */
    fusednorm_casting casting;
    /* Rows of x (>= 0) and N (>= 1). */
    int64_t rows;
    int64_t columns;
    /* 0: no weight, 1: weight (N), H: per-head weight (H, N) (rows must be a multiple of H). */
    int64_t weight_rows;
    /* x's dtype (backward: input's). */
    fusednorm_dtype x_dtype;
    /* Forward: the residual's dtype, FUSEDNORM_DTYPE_NONE without one. Backward: ignored. */
    fusednorm_dtype residual_dtype;
    /* Backward: dy's dtype. Forward: ignored. */
    fusednorm_dtype output_gradient_dtype;
    fusednorm_dtype weight_dtype;
    /* LayerNorm forward: the bias's dtype or NONE. LayerNorm backward: dbias's dtype or NONE. */
    fusednorm_dtype bias_dtype;
    /* Forward: y's dtype. Backward: dx's dtype. */
    fusednorm_dtype output_dtype;
    /* Forward: s's dtype (with a residual). Backward: residual_gradient's dtype (with that flag). */
    fusednorm_dtype residual_output_dtype;
    /* Backward: dweight's dtype, NONE when not computed. */
    fusednorm_dtype weight_gradient_dtype;
    /* FUSEDNORM_PREPARE_* bits. */
    uint32_t flags;
    float epsilon;
    /* RMSNorm: 0 or not (kernels are specialized on a nonzero offset). */
    float weight_offset;
} fusednorm_prepare_request;

/*
 * Compiles (NVRTC, or loads from the on-disk kernel cache) the GPU kernels of `count` calls and prepares
 * their launch plans, by running each call once on scratch memory FusedNorm allocates and frees, then
 * waits for the device. Call it before capturing CUDA graphs, so that no compilation happens during
 * capture. Not itself capturable.
 */
fusednorm_status fusednorm_prepare(const fusednorm_prepare_request *requests, int32_t count);

/* ---- DLPack ------------------------------------------------------------------------------------------ */

/* The DLPack structs (dlpack.h in the package; only pointers are passed here). */
struct DLTensor;
struct DLManagedTensor;
struct DLManagedTensorVersioned;

/*
 * Describes a DLPack tensor as a call argument, without a copy: fills `tensor` (data = data + byte_offset,
 * strides in elements; NULL strides: contiguous). The DLPack tensor keeps owning the memory: keep it alive
 * while the descriptor is used, and call its deleter yourself afterwards.
 * Unsupported (FUSEDNORM_UNSUPPORTED, the message names it): dtypes other than float32/float16/bfloat16,
 * lanes != 1, devices other than kDLCPU (and kDLCUDAHost, as CPU) and kDLCUDA, ndim outside 1...8,
 * a non-unit last stride, a byte_offset that misaligns the data for its dtype.
 */
fusednorm_status fusednorm_tensor_from_dlpack(const struct DLTensor *dl_tensor, fusednorm_tensor *tensor);

/* As fusednorm_tensor_from_dlpack for a DLManagedTensor's dl_tensor. */
fusednorm_status fusednorm_tensor_from_dlpack_managed(
    const struct DLManagedTensor *managed, fusednorm_tensor *tensor);

/* As fusednorm_tensor_from_dlpack for a DLPack 1.x tensor; its DLPACK_FLAG_BITMASK_READ_ONLY flag sets
   FUSEDNORM_TENSOR_READ_ONLY (never written; as an output: an error). A major version other than 1:
   FUSEDNORM_UNSUPPORTED. */
fusednorm_status fusednorm_tensor_from_dlpack_versioned(
    const struct DLManagedTensorVersioned *managed, fusednorm_tensor *tensor);

/*
 * Exports a descriptor as a DLPack 1.x tensor that views the same memory (no copy). Only the DLPack
 * metadata is allocated; its deleter frees that metadata and never the memory, which the caller keeps
 * alive until the consumer has called the deleter. A read-only descriptor exports with the read-only flag.
 */
fusednorm_status fusednorm_tensor_to_dlpack_versioned(
    const fusednorm_tensor *tensor, struct DLManagedTensorVersioned **managed);

/* As fusednorm_tensor_to_dlpack_versioned, as a legacy (pre-1.0) DLManagedTensor. */
fusednorm_status fusednorm_tensor_to_dlpack(const fusednorm_tensor *tensor, struct DLManagedTensor **managed);

#ifdef __cplusplus
}
#endif

#endif /* FUSEDNORM_H */
