import CFusedNormABI
import FusedNorm

/// One `fusednorm_prepare_request`, checked: the call it describes, on tensors FusedNorm allocates.
struct PreparedCall {
    let request: fusednorm_prepare_request
    let device: Device

    init(_ request: fusednorm_prepare_request) throws {
        self.request = request
        device = try Device(descriptorType: request.device_type, index: request.device_index)
        guard request.rows >= 0, request.columns >= 1 else {
            throw InterfaceError.invalid(
                "rows \(request.rows) and columns \(request.columns): need rows >= 0 and columns >= 1")
        }
        guard request.weight_rows >= 0, request.weight_rows <= 1 || request.rows % request.weight_rows == 0 else {
            throw InterfaceError.invalid(
                "weight_rows \(request.weight_rows): 0, 1, or H dividing rows (\(request.rows))")
        }
        guard
            (fusednorm_operation(FUSEDNORM_RMS_NORM_FORWARD)...fusednorm_operation(FUSEDNORM_LAYER_NORM_BACKWARD))
                .contains(request.operation)
        else {
            throw InterfaceError.invalid(
                "operation is \(request.operation); known: 1 ... 4 (FUSEDNORM_RMS_NORM_FORWARD ... FUSEDNORM_LAYER_NORM_BACKWARD)"
            )
        }
        _ = try casting(request.operation == fusednorm_operation(FUSEDNORM_RMS_NORM_FORWARD) ? request.casting : 0)
        _ = try DType(descriptor: request.x_dtype)
        for (name, code) in [
            ("residual_dtype", request.residual_dtype), ("output_gradient_dtype", request.output_gradient_dtype),
            ("weight_dtype", request.weight_dtype), ("bias_dtype", request.bias_dtype),
            ("output_dtype", request.output_dtype),
            ("residual_output_dtype", request.residual_output_dtype),
            ("weight_gradient_dtype", request.weight_gradient_dtype),
        ] {
            do { _ = try Self.dtype(code) } catch { throw InterfaceError(error, context: name) }
        }
    }

    /// nil for FUSEDNORM_DTYPE_NONE.
    static func dtype(_ code: fusednorm_dtype) throws -> DType? {
        code == fusednorm_dtype(FUSEDNORM_DTYPE_NONE) ? nil : try DType(descriptor: code)
    }

    /// Runs the call once on zero-filled tensors of the request's shapes and dtypes, then waits for the device.
    func run() throws {
        let r = request
        let rows = Int(r.rows), columns = Int(r.columns), heads = Int(r.weight_rows)
        let xDType = try DType(descriptor: r.x_dtype)
        let shape = heads > 1 ? [rows / heads, heads, columns] : [rows, columns]
        let parameterShape = heads > 1 ? [heads, columns] : [columns]
        func tensor(_ dtype: DType?, _ shape: [Int]) throws -> Tensor? {
            try dtype.map { try Tensor.zeros(shape, dtype: $0, device: device) }
        }
        let x = try Tensor(repeating: 0.5, shape: shape, dtype: xDType, device: device)
        let weight = heads > 0 ? try tensor(try Self.dtype(r.weight_dtype) ?? xDType, parameterShape) : nil
        let output = try tensor(try Self.dtype(r.output_dtype) ?? xDType, shape)!
        let statistics = r.flags & UInt32(FUSEDNORM_PREPARE_STATISTICS) != 0
        let rowShape = Array(shape.dropLast())
        switch r.operation {
        case fusednorm_operation(FUSEDNORM_RMS_NORM_FORWARD), fusednorm_operation(FUSEDNORM_LAYER_NORM_FORWARD):
            let residualDType = try Self.dtype(r.residual_dtype)
            let residual = try tensor(residualDType, shape)
            let residualOutput = try tensor(residualDType.map { try Self.dtype(r.residual_output_dtype) ?? $0 }, shape)
            let rstd = statistics ? try tensor(.float32, rowShape) : nil
            if r.operation == fusednorm_operation(FUSEDNORM_RMS_NORM_FORWARD) {
                let style = RMSNormStyle(weightOffset: r.weight_offset, rounding: try casting(r.casting))
                if statistics {
                    _ = try rmsNormForward(
                        x, residual: residual, weight: weight, epsilon: r.epsilon,
                        style: style, output: output, residualOutput: residualOutput, rstdOutput: rstd)
                } else if let residual {
                    _ = try rmsNorm(
                        x, residual: residual, weight: weight, epsilon: r.epsilon,
                        style: style, output: output, residualOutput: residualOutput)
                } else {
                    _ = try rmsNorm(x, weight: weight, epsilon: r.epsilon, style: style, output: output)
                }
            } else {
                let bias = try tensor(try Self.dtype(r.bias_dtype), parameterShape)
                if statistics {
                    _ = try layerNormForward(
                        x, residual: residual, weight: weight, bias: bias, epsilon: r.epsilon, output: output,
                        residualOutput: residualOutput, meanOutput: try tensor(.float32, rowShape), rstdOutput: rstd)
                } else if let residual {
                    _ = try layerNorm(
                        x, residual: residual, weight: weight, bias: bias, epsilon: r.epsilon, output: output,
                        residualOutput: residualOutput)
                } else {
                    _ = try layerNorm(x, weight: weight, bias: bias, epsilon: r.epsilon, output: output)
                }
            }
        default:
            let dy = try tensor(try Self.dtype(r.output_gradient_dtype) ?? xDType, shape)!
            let residualGradient =
                r.flags & UInt32(FUSEDNORM_PREPARE_RESIDUAL_GRADIENT) != 0
                ? try tensor(try Self.dtype(r.residual_output_dtype) ?? xDType, shape) : nil
            let dweight = weight != nil ? try tensor(try Self.dtype(r.weight_gradient_dtype), parameterShape) : nil
            let rstd = statistics ? try Tensor(repeating: 1, shape: rowShape, device: device) : nil
            if r.operation == fusednorm_operation(FUSEDNORM_RMS_NORM_BACKWARD) {
                _ = try rmsNormBackward(
                    dy, input: x, weight: weight, rstd: rstd, residualGradient: residualGradient, epsilon: r.epsilon,
                    style: RMSNormStyle(weightOffset: r.weight_offset), inputGradient: output, weightGradient: dweight)
            } else {
                let dbias = try tensor(try Self.dtype(r.bias_dtype), parameterShape)
                _ = try layerNormBackward(
                    dy, input: x, weight: weight, bias: dbias, mean: statistics ? try tensor(.float32, rowShape) : nil,
                    rstd: rstd,
                    residualGradient: residualGradient, epsilon: r.epsilon, inputGradient: output,
                    weightGradient: dweight,
                    biasGradient: dbias)
            }
        }
        try device.synchronize()
    }
}

@_cdecl("fusednorm_prepare")
public func fusednorm_prepare(_ requests: UnsafePointer<fusednorm_prepare_request>?, _ count: Int32) -> fusednorm_status
{
    callBoundary("fusednorm_prepare") {
        guard count >= 0 else { throw InterfaceError.invalid("count is \(count); it must be >= 0") }
        guard count > 0 else { return }
        let requests = try required(requests, "requests")
        // Check every request before compiling anything.
        let calls = try (0..<Int(count)).map { index in
            do { return try PreparedCall(requests[index]) } catch {
                throw InterfaceError(error, context: "requests[\(index)]")
            }
        }
        for (index, call) in calls.enumerated() where call.device != .cpu {
            do {
                try call.device.checkUsable()
                try call.run()
            } catch {
                throw InterfaceError(error, context: "requests[\(index)]")
            }
        }
    }
}
