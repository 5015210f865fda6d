import CFusedNormABI
@_spi(CInterface) import FusedNorm

/// Runs `body` with the caller's stream current for `device` (CUDA), or directly (CPU; NULL stream),
/// adding the tensor allocations and copies it makes to ``LibraryCounters``.
func onStream(_ stream: UnsafeMutableRawPointer?, device: Device, _ body: () throws -> Void) throws {
    let counted = try InterfaceMemoryCounters.counting {
        guard let stream, case .cuda = device else { return try body() }
        try CallerStreams.run(on: stream, device: device, body)
    }
    LibraryCounters.add(allocations: counted.allocations, copies: counted.copies)
}

/// Saved statistics (rstd, mean): as any descriptor, except that when x has no rows an empty float32
/// descriptor (a zero in its shape, as PyTorch makes for an empty batch) is accepted and stands for nothing.
func statistics(_ pointer: UnsafePointer<fusednorm_tensor>?, _ argument: String, rowsOf x: Tensor) throws -> Tensor? {
    guard let pointer else { return nil }
    if x.rows == 0 {
        do {
            let fields = try DescriptorFields(pointer.pointee)
            if fields.shape.contains(0) {
                guard fields.dtype == .float32 else {
                    throw InterfaceError.invalid("has dtype \(fields.dtype), expected float32")
                }
                guard fields.device == x.device else {
                    throw InterfaceError.invalid("is on \(fields.device), x on \(x.device)")
                }
                return nil
            }
        } catch {
            throw InterfaceError(error, context: argument)
        }
    }
    return try Tensor(descriptor: pointer, argument: argument)
}

/// Saved mean and rstd go together (LayerNorm).
func checkStatisticsPair(
    _ mean: UnsafePointer<fusednorm_tensor>?, _ rstd: UnsafePointer<fusednorm_tensor>?, _ names: String
) throws {
    guard (mean == nil) == (rstd == nil) else {
        throw InterfaceError.invalid("\(names) go together: give both or neither")
    }
}

/// The rounding of a C casting code: standard is one rounding, llama two.
func casting(_ code: fusednorm_casting) throws -> RMSNormStyle.Rounding {
    switch code {
    case fusednorm_casting(FUSEDNORM_CASTING_STANDARD): .once
    case fusednorm_casting(FUSEDNORM_CASTING_LLAMA): .twice
    default:
        throw InterfaceError.invalid(
            "casting is \(code); known: FUSEDNORM_CASTING_STANDARD (0), FUSEDNORM_CASTING_LLAMA (1)")
    }
}

@_cdecl("fusednorm_rms_norm_forward")
public func fusednorm_rms_norm_forward(
    _ x: UnsafePointer<fusednorm_tensor>?, _ residual: UnsafePointer<fusednorm_tensor>?,
    _ weight: UnsafePointer<fusednorm_tensor>?, _ epsilon: Float, _ weightOffset: Float,
    _ castingCode: fusednorm_casting,
    _ output: UnsafePointer<fusednorm_tensor>?, _ residualOutput: UnsafePointer<fusednorm_tensor>?,
    _ rstdOutput: UnsafePointer<fusednorm_tensor>?, _ stream: UnsafeMutableRawPointer?
) -> fusednorm_status {
    callBoundary("fusednorm_rms_norm_forward") {
        let x = try Tensor(descriptor: try required(x, "x"), argument: "x")
        let residual = try Tensor(optionalDescriptor: residual, argument: "residual")
        let weight = try Tensor(optionalDescriptor: weight, argument: "weight")
        let output = try Tensor(descriptor: try required(output, "output"), argument: "output")
        let residualOutput = try Tensor(optionalDescriptor: residualOutput, argument: "residual_output")
        let rstdOutput = try statistics(rstdOutput, "rstd_output", rowsOf: x)
        let style = RMSNormStyle(weightOffset: weightOffset, rounding: try casting(castingCode))
        try checkResidualPair(residual, residualOutput)
        try onStream(stream, device: x.device) {
            if rstdOutput != nil {
                _ = try rmsNormForward(
                    x, residual: residual, weight: weight, epsilon: epsilon, style: style,
                    output: output, residualOutput: residualOutput, rstdOutput: rstdOutput)
            } else if let residual {
                _ = try rmsNorm(
                    x, residual: residual, weight: weight, epsilon: epsilon, style: style,
                    output: output, residualOutput: residualOutput)
            } else {
                _ = try rmsNorm(x, weight: weight, epsilon: epsilon, style: style, output: output)
            }
        }
    }
}

/// A residual and its output go together (the C interface never allocates s for the caller).
func checkResidualPair(_ residual: Tensor?, _ residualOutput: Tensor?) throws {
    if residual != nil, residualOutput == nil {
        throw InterfaceError.invalid(
            "residual_output is NULL but a residual is given: s = x + residual needs a destination")
    }
    if residual == nil, residualOutput != nil {
        throw InterfaceError.invalid("residual_output is given without a residual to add")
    }
}

@_cdecl("fusednorm_rms_norm_backward")
public func fusednorm_rms_norm_backward(
    _ outputGradient: UnsafePointer<fusednorm_tensor>?, _ input: UnsafePointer<fusednorm_tensor>?,
    _ weight: UnsafePointer<fusednorm_tensor>?, _ rstd: UnsafePointer<fusednorm_tensor>?,
    _ residualGradient: UnsafePointer<fusednorm_tensor>?, _ epsilon: Float, _ weightOffset: Float,
    _ inputGradient: UnsafePointer<fusednorm_tensor>?, _ weightGradient: UnsafePointer<fusednorm_tensor>?,
    _ stream: UnsafeMutableRawPointer?
) -> fusednorm_status {
    callBoundary("fusednorm_rms_norm_backward") {
        let dy = try Tensor(descriptor: try required(outputGradient, "output_gradient"), argument: "output_gradient")
        let x = try Tensor(descriptor: try required(input, "input"), argument: "input")
        let weight = try Tensor(optionalDescriptor: weight, argument: "weight")
        let rstd = try statistics(rstd, "rstd", rowsOf: x)
        let residualGradient = try Tensor(optionalDescriptor: residualGradient, argument: "residual_gradient")
        let dx = try Tensor(descriptor: try required(inputGradient, "input_gradient"), argument: "input_gradient")
        let dweight = try Tensor(optionalDescriptor: weightGradient, argument: "weight_gradient")
        try onStream(stream, device: x.device) {
            _ = try rmsNormBackward(
                dy, input: x, weight: weight, rstd: rstd, residualGradient: residualGradient, epsilon: epsilon,
                style: RMSNormStyle(weightOffset: weightOffset), inputGradient: dx, weightGradient: dweight)
        }
    }
}

@_cdecl("fusednorm_layer_norm_forward")
public func fusednorm_layer_norm_forward(
    _ x: UnsafePointer<fusednorm_tensor>?, _ residual: UnsafePointer<fusednorm_tensor>?,
    _ weight: UnsafePointer<fusednorm_tensor>?, _ bias: UnsafePointer<fusednorm_tensor>?, _ epsilon: Float,
    _ output: UnsafePointer<fusednorm_tensor>?, _ residualOutput: UnsafePointer<fusednorm_tensor>?,
    _ meanOutput: UnsafePointer<fusednorm_tensor>?, _ rstdOutput: UnsafePointer<fusednorm_tensor>?,
    _ stream: UnsafeMutableRawPointer?
) -> fusednorm_status {
    callBoundary("fusednorm_layer_norm_forward") {
        let x = try Tensor(descriptor: try required(x, "x"), argument: "x")
        let residual = try Tensor(optionalDescriptor: residual, argument: "residual")
        let weight = try Tensor(optionalDescriptor: weight, argument: "weight")
        let bias = try Tensor(optionalDescriptor: bias, argument: "bias")
        let output = try Tensor(descriptor: try required(output, "output"), argument: "output")
        let residualOutput = try Tensor(optionalDescriptor: residualOutput, argument: "residual_output")
        try checkStatisticsPair(meanOutput, rstdOutput, "mean_output and rstd_output")
        let meanOutput = try statistics(meanOutput, "mean_output", rowsOf: x)
        let rstdOutput = try statistics(rstdOutput, "rstd_output", rowsOf: x)
        try checkResidualPair(residual, residualOutput)
        try onStream(stream, device: x.device) {
            if meanOutput != nil {
                _ = try layerNormForward(
                    x, residual: residual, weight: weight, bias: bias, epsilon: epsilon, output: output,
                    residualOutput: residualOutput, meanOutput: meanOutput, rstdOutput: rstdOutput)
            } else if let residual {
                _ = try layerNorm(
                    x, residual: residual, weight: weight, bias: bias, epsilon: epsilon, output: output,
                    residualOutput: residualOutput)
            } else {
                _ = try layerNorm(x, weight: weight, bias: bias, epsilon: epsilon, output: output)
            }
        }
    }
}

@_cdecl("fusednorm_layer_norm_backward")
public func fusednorm_layer_norm_backward(
    _ outputGradient: UnsafePointer<fusednorm_tensor>?, _ input: UnsafePointer<fusednorm_tensor>?,
    _ weight: UnsafePointer<fusednorm_tensor>?, _ mean: UnsafePointer<fusednorm_tensor>?,
    _ rstd: UnsafePointer<fusednorm_tensor>?, _ residualGradient: UnsafePointer<fusednorm_tensor>?, _ epsilon: Float,
    _ inputGradient: UnsafePointer<fusednorm_tensor>?, _ weightGradient: UnsafePointer<fusednorm_tensor>?,
    _ biasGradient: UnsafePointer<fusednorm_tensor>?, _ stream: UnsafeMutableRawPointer?
) -> fusednorm_status {
    callBoundary("fusednorm_layer_norm_backward") {
        let dy = try Tensor(descriptor: try required(outputGradient, "output_gradient"), argument: "output_gradient")
        let x = try Tensor(descriptor: try required(input, "input"), argument: "input")
        let weight = try Tensor(optionalDescriptor: weight, argument: "weight")
        try checkStatisticsPair(mean, rstd, "mean and rstd")
        let mean = try statistics(mean, "mean", rowsOf: x)
        let rstd = try statistics(rstd, "rstd", rowsOf: x)
        let residualGradient = try Tensor(optionalDescriptor: residualGradient, argument: "residual_gradient")
        let dx = try Tensor(descriptor: try required(inputGradient, "input_gradient"), argument: "input_gradient")
        let dweight = try Tensor(optionalDescriptor: weightGradient, argument: "weight_gradient")
        let dbias = try Tensor(optionalDescriptor: biasGradient, argument: "bias_gradient")
        if let weight, let dbias, dbias.shape != weight.shape {
            throw InterfaceError.invalid(
                "bias_gradient has shape \(dbias.shape), expected \(weight.shape) (the weight's shape)")
        }
        try onStream(stream, device: x.device) {
            // dbias = Σ dy does not read the bias: the bias argument only gives dbias its shape, so dbias stands in.
            _ = try layerNormBackward(
                dy, input: x, weight: weight, bias: dbias, mean: mean, rstd: rstd, residualGradient: residualGradient,
                epsilon: epsilon, inputGradient: dx, weightGradient: dweight, biasGradient: dbias)
        }
    }
}
