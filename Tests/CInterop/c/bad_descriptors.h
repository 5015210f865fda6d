// Part of test_c_abi.c: bad descriptors and arguments (a status and a message, no crash, nothing written),
// the device query, prepare, and DLPack import/export through the C interface.

// Expects `status` == `expected`, a message that names `needle`, and the output's memory untouched.
static void expect_refusal(const char *what, fusednorm_status status, fusednorm_status expected, const char *needle, const matrix *output) {
    const char *message = fusednorm_last_error();
    CHECK(status == expected, "%s: got %s, expected %s", what, fusednorm_status_name(status), fusednorm_status_name(expected));
    CHECK(strlen(message) > 0 && strstr(message, needle) != NULL, "%s: message \"%s\" does not name \"%s\"", what, message, needle);
    if (output) {
        int untouched = 1;
        for (size_t b = 0; b < output->bytes; b++) untouched &= output->memory[b] == POISON;
        CHECK(untouched, "%s: the output was written", what);
    }
    printf("  refused as expected (%s): %s\n", fusednorm_status_name(status), message);
}

static fusednorm_status forward(const fusednorm_tensor *x, const fusednorm_tensor *y) {
    return fusednorm_rms_norm_forward(x, NULL, NULL, 1e-6f, 0, FUSEDNORM_CASTING_STANDARD, y, NULL, NULL, NULL);
}

static void test_bad_descriptors(void) {
    printf("bad descriptors:\n");
    unsigned seed = 99;
    matrix x = make_matrix(FUSEDNORM_BFLOAT16, 1, 4, 8, 8), y = make_matrix(FUSEDNORM_BFLOAT16, 1, 4, 8, 8);
    fill(&x, &seed, NULL);
    fusednorm_tensor bad;

    expect_refusal("x NULL", forward(NULL, &y.view), FUSEDNORM_INVALID_ARGUMENT, "x is NULL", &y);
    expect_refusal("output NULL", forward(&x.view, NULL), FUSEDNORM_INVALID_ARGUMENT, "output is NULL", NULL);

    bad = x.view, bad.data = NULL;
    expect_refusal("NULL data with elements", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "NULL", &y);
    bad = x.view, bad.ndim = 0;
    expect_refusal("ndim 0", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "ndim", &y);
    bad = x.view, bad.ndim = 9;
    expect_refusal("ndim 9", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "ndim", &y);
    bad = x.view, bad.ndim = -3;
    expect_refusal("ndim -3", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "ndim", &y);
    bad = x.view, bad.shape[0] = -4;
    expect_refusal("negative shape", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "negative", &y);
    bad = x.view, bad.shape[1] = 0;
    expect_refusal("empty rows", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "length 0", &y);
    bad = x.view, bad.strides[0] = 5;
    expect_refusal("stride smaller than the row", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "smaller than a row", &y);
    bad = x.view, bad.strides[1] = 2, bad.strides[0] = 16;
    expect_refusal("non-unit last stride", forward(&bad, &y.view), FUSEDNORM_UNSUPPORTED, "last stride", &y);
    bad = x.view, bad.strides[0] = -8;
    expect_refusal("negative stride", forward(&bad, &y.view), FUSEDNORM_UNSUPPORTED, "negative stride", &y);
    bad = x.view, bad.dtype = 7;
    expect_refusal("unknown dtype", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "dtype is 7", &y);
    bad = x.view, bad.device_type = 5;
    expect_refusal("unknown device type", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "device_type is 5", &y);
    bad = x.view, bad.device_index = 1;
    expect_refusal("CPU index 1", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "device_index", &y);
    bad = x.view, bad.device_type = FUSEDNORM_DEVICE_CUDA;
    fusednorm_cuda_info info;
    fusednorm_cuda_query(&info);
    if (!info.usable)
        expect_refusal("CUDA device not usable", forward(&bad, &y.view), FUSEDNORM_DEVICE_ERROR, "not usable", &y);
    bad = x.view, bad.device_type = FUSEDNORM_DEVICE_CUDA, bad.device_index = 1000;
    expect_refusal("CUDA device 1000", forward(&bad, &y.view), FUSEDNORM_DEVICE_ERROR, "cuda:1000", &y);
    bad = x.view, bad.reserved = 1;
    expect_refusal("reserved field", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "reserved", &y);
    bad = x.view, bad.flags = 8;
    expect_refusal("unknown flag", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "flags", &y);
    bad = x.view, bad.data = (char *)x.memory + 1;
    expect_refusal("misaligned data", forward(&bad, &y.view), FUSEDNORM_UNSUPPORTED, "aligned", &y);
    bad = x.view, bad.shape[0] = INT64_MAX / 2;
    expect_refusal("too many elements", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "too many", &y);
    bad = x.view, bad.strides[0] = INT64_MAX / 4;
    expect_refusal("stride overflowing the address space", forward(&bad, &y.view), FUSEDNORM_INVALID_ARGUMENT, "address space", &y);
    // Three levels of rows: (2, 2, 2, 8) with gaps at two levels.
    bad = x.view, bad.ndim = 4;
    int64_t shape4[] = {2, 2, 2, 8}, strides4[] = {200, 50, 16, 1};
    memcpy(bad.shape, shape4, sizeof shape4), memcpy(bad.strides, strides4, sizeof strides4);
    expect_refusal("three levels of rows", forward(&bad, &y.view), FUSEDNORM_UNSUPPORTED, "levels", &y);

    // Arguments that do not fit the operation.
    matrix y7 = make_matrix(FUSEDNORM_BFLOAT16, 1, 4, 7, 7);
    expect_refusal("output shape", forward(&x.view, &y7.view), FUSEDNORM_INVALID_ARGUMENT, "output has shape", &y7);
    bad = y.view, bad.flags = FUSEDNORM_TENSOR_READ_ONLY;
    expect_refusal("read-only output", forward(&x.view, &bad), FUSEDNORM_INVALID_ARGUMENT, "read-only", &y);
    expect_refusal("residual without residual_output",
                   fusednorm_rms_norm_forward(&x.view, &x.view, NULL, 1e-6f, 0, 0, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "residual_output", &y);
    expect_refusal("epsilon 0", fusednorm_rms_norm_forward(&x.view, NULL, NULL, 0, 0, 0, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "epsilon", &y);
    expect_refusal("epsilon NaN", fusednorm_rms_norm_forward(&x.view, NULL, NULL, NAN, 0, 0, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "epsilon", &y);
    expect_refusal("unknown casting", fusednorm_rms_norm_forward(&x.view, NULL, NULL, 1e-6f, 0, 9, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "casting", &y);
    matrix rstd16 = make_vector(FUSEDNORM_FLOAT16, 1, 4);
    expect_refusal("rstd_output in float16",
                   fusednorm_rms_norm_forward(&x.view, NULL, NULL, 1e-6f, 0, 0, &y.view, NULL, &rstd16.view, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "rstd_output has dtype", &y);
    matrix w = make_vector(FUSEDNORM_BFLOAT16, 1, 9);
    expect_refusal("weight of another length",
                   fusednorm_rms_norm_forward(&x.view, NULL, &w.view, 1e-6f, 0, 0, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "weight has shape", &y);
    matrix dw = make_vector(FUSEDNORM_FLOAT32, 1, 8);
    expect_refusal("weight_gradient without a weight",
                   fusednorm_rms_norm_backward(&x.view, &x.view, NULL, NULL, NULL, 1e-6f, 0, &y.view, &dw.view, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "weight", &y);
    matrix rstd = make_vector(FUSEDNORM_FLOAT32, 1, 4);
    expect_refusal("mean without rstd",
                   fusednorm_layer_norm_backward(&x.view, &x.view, NULL, &rstd.view, NULL, NULL, 1e-5f, &y.view, NULL, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "mean", &y);
    expect_refusal("mean_output without rstd_output",
                   fusednorm_layer_norm_forward(&x.view, NULL, NULL, NULL, 1e-5f, &y.view, NULL, &rstd.view, NULL, NULL),
                   FUSEDNORM_INVALID_ARGUMENT, "mean_output", &y);
    matrix xf = make_matrix(FUSEDNORM_FLOAT32, 1, 4, 8, 8);
    fill(&xf, &seed, NULL);
    bad = xf.view, bad.device_type = FUSEDNORM_DEVICE_CUDA;
    expect_refusal("tensors on two devices", fusednorm_rms_norm_forward(&xf.view, &bad, NULL, 1e-6f, 0, 0, &y.view, &y.view, NULL, NULL),
                   info.usable ? FUSEDNORM_INVALID_ARGUMENT : FUSEDNORM_DEVICE_ERROR, "residual", &y);
    expect_refusal("tensor_check", fusednorm_tensor_check(NULL), FUSEDNORM_INVALID_ARGUMENT, "tensor is NULL", NULL);
    CHECK(fusednorm_tensor_check(&x.view) == FUSEDNORM_SUCCESS, "tensor_check of a good descriptor");
    CHECK(fusednorm_tensor_init(&bad, NULL, 1, 0, 1, 9, shape4) == FUSEDNORM_INVALID_ARGUMENT, "tensor_init with ndim 9");

    // The error message is per thread and the status names are stable.
    CHECK(strcmp(fusednorm_status_name(FUSEDNORM_UNSUPPORTED), "FUSEDNORM_UNSUPPORTED") == 0, "status name");
    CHECK(strncmp(fusednorm_last_error(), "fusednorm_", 10) == 0, "messages start with the function's name");

    // A stream is ignored for CPU tensors, and a good call still works after all of these.
    fusednorm_status status = fusednorm_rms_norm_forward(&x.view, NULL, NULL, 1e-6f, 0, 0, &y.view, NULL, NULL, (void *)0x1234);
    CHECK(status == FUSEDNORM_SUCCESS, "a CPU call with a stream: %s", fusednorm_status_name(status));
    free_matrix(&x), free_matrix(&y), free_matrix(&y7), free_matrix(&rstd16), free_matrix(&w), free_matrix(&dw);
    free_matrix(&rstd), free_matrix(&xf);
}

// The (T, H, D) q view of a fused (T, 3*H*D) qkv tensor: heads D apart, tokens 3*H*D apart (grouped rows).
static void test_grouped_rows(void) {
    enum { T = 3, H = 4, D = 24 };
    unsigned seed = 5;
    matrix qkv = make_matrix(FUSEDNORM_BFLOAT16, 1, T, 3 * H * D, 3 * H * D), out = make_matrix(FUSEDNORM_BFLOAT16, 1, T, 3 * H * D, 3 * H * D);
    fill(&qkv, &seed, NULL);
    fusednorm_tensor q = qkv.view, y = out.view;
    int64_t shape[3] = {T, H, D}, strides[3] = {3 * H * D, D, 1};
    q.ndim = y.ndim = 3;
    memcpy(q.shape, shape, sizeof shape), memcpy(q.strides, strides, sizeof strides);
    memcpy(y.shape, shape, sizeof shape), memcpy(y.strides, strides, sizeof strides);
    fusednorm_status status = forward(&q, &y);
    CHECK(status == FUSEDNORM_SUCCESS, "grouped rows: %s", fusednorm_status_name(status));
    double s[T * H * D], expected[T * H * D], got[T * H * D];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < H * D; k++) {
            s[t * H * D + k] = get(&qkv, t, k);
            got[t * H * D + k] = get(&out, t, k);
        }
    reference_forward(0, s, NULL, NULL, T * H, D, 1, 1e-6, 0, 0, FUSEDNORM_BFLOAT16, expected, NULL, NULL);
    shape_case c = {T, T * H, D, FUSEDNORM_BFLOAT16, 1};
    check_close("grouped rows y", &c, got, expected, T * H * D, tolerance(FUSEDNORM_BFLOAT16, 0));
    int untouched = 1;  // k and v columns of the output
    for (int t = 0; t < T; t++)
        for (int64_t b = (int64_t)(t * 3 * H * D + H * D) * 2; b < (int64_t)(t + 1) * 3 * H * D * 2; b++) untouched &= out.memory[b] == POISON;
    CHECK(untouched, "grouped rows: only q's columns written");
    free_matrix(&qkv), free_matrix(&out);
}

// The counters count: a backward with a weight but no weight_gradient computes dweight into a temporary.
static void test_counted_temporary(void) {
    unsigned seed = 3;
    int64_t before_allocations, before_copies, allocations, copies;
    fusednorm_memory_counters(&before_allocations, &before_copies);
    matrix x = make_matrix(FUSEDNORM_FLOAT32, 1, 4, 16, 16), dy = make_matrix(FUSEDNORM_FLOAT32, 1, 4, 16, 16);
    matrix dx = make_matrix(FUSEDNORM_FLOAT32, 1, 4, 16, 16), w = make_vector(FUSEDNORM_FLOAT32, 1, 16);
    fill(&x, &seed, NULL), fill(&dy, &seed, NULL), fill(&w, &seed, NULL);
    fusednorm_status status = fusednorm_rms_norm_backward(&dy.view, &x.view, &w.view, NULL, NULL, 1e-6f, 0, &dx.view, NULL, NULL);
    CHECK(status == FUSEDNORM_SUCCESS, "backward without weight_gradient: %s", fusednorm_status_name(status));
    fusednorm_memory_counters(&allocations, &copies);
    CHECK(allocations == before_allocations + 1 && copies == before_copies, "the temporary dweight is counted (%lld -> %lld)",
          (long long)before_allocations, (long long)allocations);
    expect_refusal("memory_counters NULL", fusednorm_memory_counters(NULL, &copies), FUSEDNORM_INVALID_ARGUMENT, "allocations", NULL);
    free_matrix(&x), free_matrix(&dy), free_matrix(&dx), free_matrix(&w);
}

static void test_devices_and_prepare(void) {
    fusednorm_cuda_info info;
    CHECK(fusednorm_cuda_query(&info) == FUSEDNORM_SUCCESS, "cuda_query");
    printf("CUDA: usable %d, %d device(s), driver \"%s\", NVRTC \"%s\", problem \"%s\"\n", info.usable, info.device_count,
           info.driver_version, info.nvrtc_version, info.problem);
    CHECK(info.usable || strlen(info.problem) > 0, "an unusable CUDA says why");
    for (int32_t i = 0; i < info.device_count; i++) {
        fusednorm_cuda_device device;
        CHECK(fusednorm_cuda_device_query(i, &device) == FUSEDNORM_SUCCESS, "device %d", i);
        printf("  cuda:%d %s, compute capability %d.%d, %d SMs, %lld bytes\n", device.index, device.name,
               device.compute_capability_major, device.compute_capability_minor, device.multiprocessor_count,
               (long long)device.memory_bytes);
    }
    fusednorm_cuda_device device;
    expect_refusal("device query out of range", fusednorm_cuda_device_query(info.device_count, &device),
                   FUSEDNORM_INVALID_ARGUMENT, "index", NULL);
    expect_refusal("cuda_query NULL", fusednorm_cuda_query(NULL), FUSEDNORM_INVALID_ARGUMENT, "info", NULL);

    fusednorm_prepare_request requests[2] = {{0}, {0}};
    requests[0].operation = FUSEDNORM_RMS_NORM_FORWARD, requests[0].device_type = FUSEDNORM_DEVICE_CPU;
    requests[0].rows = 16, requests[0].columns = 4096, requests[0].weight_rows = 1, requests[0].x_dtype = FUSEDNORM_BFLOAT16;
    requests[0].epsilon = 1e-6f;
    CHECK(fusednorm_prepare(requests, 1) == FUSEDNORM_SUCCESS, "prepare on the CPU");
    requests[1] = requests[0];
    requests[1].device_type = FUSEDNORM_DEVICE_CUDA, requests[1].operation = FUSEDNORM_LAYER_NORM_BACKWARD;
    requests[1].weight_gradient_dtype = FUSEDNORM_FLOAT32, requests[1].bias_dtype = FUSEDNORM_FLOAT32;
    if (!info.usable)
        expect_refusal("prepare on an unusable GPU", fusednorm_prepare(requests, 2), FUSEDNORM_DEVICE_ERROR, "requests[1]", NULL);
    requests[0].x_dtype = 11;
    expect_refusal("prepare with a bad dtype", fusednorm_prepare(requests, 1), FUSEDNORM_INVALID_ARGUMENT, "requests[0]", NULL);
}

static void test_dlpack(void) {
    // Export a strided descriptor, read it back through the DLPack structs alone, free it with its deleter.
    unsigned seed = 7;
    matrix x = make_matrix(FUSEDNORM_FLOAT16, 1, 3, 5, 9);
    double values[15];
    fill(&x, &seed, values);
    DLManagedTensorVersioned *exported = NULL;
    CHECK(fusednorm_tensor_to_dlpack_versioned(&x.view, &exported) == FUSEDNORM_SUCCESS && exported, "export");
    if (exported) {
        DLTensor *t = &exported->dl_tensor;
        CHECK(exported->version.major == 1 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 5, "exported shape");
        CHECK(t->strides && t->strides[0] == 9 && t->strides[1] == 1, "exported strides");
        CHECK(t->dtype.code == kDLFloat && t->dtype.bits == 16 && t->dtype.lanes == 1 && t->device.device_type == kDLCPU, "exported dtype and device");
        CHECK((char *)t->data + t->byte_offset == (char *)x.memory, "the export views the caller's memory (no copy)");
        int same = 1;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) same &= load((char *)t->data + t->byte_offset, i * t->strides[0] + j, FUSEDNORM_FLOAT16) == values[i * 5 + j];
        CHECK(same, "exported values read back through DLPack");

        // Import it again as a descriptor: the same view.
        fusednorm_tensor back;
        CHECK(fusednorm_tensor_from_dlpack_versioned(exported, &back) == FUSEDNORM_SUCCESS, "import of the export");
        CHECK(back.data == x.view.data && back.strides[0] == 9 && back.dtype == FUSEDNORM_FLOAT16 && back.flags == 0, "round trip");
        // Read-only: the flag carries over and refuses the tensor as an output.
        exported->flags |= DLPACK_FLAG_BITMASK_READ_ONLY;
        CHECK(fusednorm_tensor_from_dlpack_versioned(exported, &back) == FUSEDNORM_SUCCESS && back.flags == FUSEDNORM_TENSOR_READ_ONLY, "read-only import");
        matrix out = make_matrix(FUSEDNORM_FLOAT16, 1, 3, 5, 9);
        memcpy(out.memory, x.memory, x.bytes);
        expect_refusal("a read-only DLPack tensor as output", forward(&x.view, &back), FUSEDNORM_INVALID_ARGUMENT, "read-only", NULL);
        CHECK(memcmp(out.memory, x.memory, x.bytes) == 0, "the read-only tensor was not written");
        CHECK(forward(&back, &out.view) == FUSEDNORM_SUCCESS, "a read-only tensor as input");
        // Unsupported DLPack tensors are named.
        exported->dl_tensor.dtype.lanes = 2;
        expect_refusal("lanes 2", fusednorm_tensor_from_dlpack_versioned(exported, &back), FUSEDNORM_UNSUPPORTED, "lanes", NULL);
        exported->dl_tensor.dtype.lanes = 1, exported->dl_tensor.dtype.code = kDLInt, exported->dl_tensor.dtype.bits = 32;
        expect_refusal("int32", fusednorm_tensor_from_dlpack_versioned(exported, &back), FUSEDNORM_UNSUPPORTED, "int32", NULL);
        exported->dl_tensor.dtype.code = kDLFloat, exported->dl_tensor.dtype.bits = 16, exported->dl_tensor.device.device_type = kDLMetal;
        expect_refusal("kDLMetal", fusednorm_tensor_from_dlpack_versioned(exported, &back), FUSEDNORM_UNSUPPORTED, "kDLMetal", NULL);
        exported->dl_tensor.device.device_type = kDLCPU, exported->dl_tensor.byte_offset = 1;
        expect_refusal("odd byte_offset", fusednorm_tensor_from_dlpack_versioned(exported, &back), FUSEDNORM_UNSUPPORTED, "aligned", NULL);
        exported->dl_tensor.byte_offset = 0, exported->version.major = 2;
        expect_refusal("DLPack 2.0", fusednorm_tensor_from_dlpack_versioned(exported, &back), FUSEDNORM_UNSUPPORTED, "version 2", NULL);
        exported->deleter(exported);
        free_matrix(&out);
    }
    DLManagedTensor *legacy = NULL;
    CHECK(fusednorm_tensor_to_dlpack(&x.view, &legacy) == FUSEDNORM_SUCCESS && legacy, "legacy export");
    if (legacy) {
        fusednorm_tensor back;
        CHECK(fusednorm_tensor_from_dlpack_managed(legacy, &back) == FUSEDNORM_SUCCESS && back.data == x.view.data, "legacy round trip");
        legacy->deleter(legacy);
    }
    free_matrix(&x);
}
