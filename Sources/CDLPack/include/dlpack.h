/*
 * dlpack.h -- the DLPack tensor exchange structs, declared from the published DLPack specification
 * (https://dmlc.github.io/dlpack/latest/, version 1.x) for FusedNorm. Only what FusedNorm reads and
 * writes is declared; the layout of every struct is the specification's, so that a tensor made by
 * PyTorch, JAX, CuPy, NumPy or MLX can be read through these declarations and the other way round.
 *
 * Ownership in a few words: whoever receives a DLManagedTensor(Versioned) owns it and calls its
 * `deleter` exactly once when done (the deleter may be NULL: nothing to free). `manager_ctx` is the
 * producer's, never touched by the consumer.
 */
#ifndef CDLPACK_DLPACK_H
#define CDLPACK_DLPACK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The DLPack version these declarations follow (the ABI of DLManagedTensorVersioned). */
#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 0

/* Where a tensor's memory lives. */
typedef enum {
    kDLCPU = 1,          /* host memory */
    kDLCUDA = 2,         /* CUDA device memory */
    kDLCUDAHost = 3,     /* pinned host memory from cudaMallocHost: readable by the CPU */
    kDLOpenCL = 4,
    kDLVulkan = 7,
    kDLMetal = 8,
    kDLVPI = 9,
    kDLROCM = 10,
    kDLROCMHost = 11,
    kDLExtDev = 12,
    kDLCUDAManaged = 13, /* CUDA unified (managed) memory */
    kDLOneAPI = 14,
    kDLWebGPU = 15,
    kDLHexagon = 16,
    kDLMAIA = 17
} DLDeviceType;

/* A device: its type and its ordinal among devices of that type. */
typedef struct {
    DLDeviceType device_type;
    int32_t device_id;
} DLDevice;

/* Kinds of element (DLDataType.code). */
typedef enum {
    kDLInt = 0,
    kDLUInt = 1,
    kDLFloat = 2,        /* IEEE binary floating point; bits 16 is float16 */
    kDLOpaqueHandle = 3,
    kDLBfloat = 4,       /* bfloat16 (bits 16) */
    kDLComplex = 5,
    kDLBool = 6
} DLDataTypeCode;

/* An element type: kind, bits per lane, lanes (1 for scalars). */
typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
} DLDataType;

/*
 * A view of memory: element (i0, ..., i[ndim-1]) lies at
 *     (char *)data + byte_offset + (sum_k i_k * strides[k]) * (bits * lanes / 8).
 * `strides` counts elements, not bytes; NULL means compact row-major.
 */
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;

/* The pre-1.0 managed tensor (no version, no flags). */
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

/* A DLPack version: a different major version means an incompatible ABI. */
typedef struct {
    uint32_t major;
    uint32_t minor;
} DLPackVersion;

/* DLManagedTensorVersioned.flags */
#define DLPACK_FLAG_BITMASK_READ_ONLY 1ULL             /* the consumer must not write the memory */
#define DLPACK_FLAG_BITMASK_IS_COPIED 2ULL             /* the producer copied the data for this export */
#define DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED 4ULL

/* The DLPack 1.x managed tensor: `version` first, so that a consumer can check it before anything else. */
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;

#ifdef __cplusplus
}
#endif

#endif /* CDLPACK_DLPACK_H */
