extension Tensor {
    /// Creates a contiguous tensor from row-major values, rounded to `dtype`.
    /// - Parameters:
    ///   - values: `shape.reduce(1, *)` values in row-major order.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - dtype: the storage type; default `.float32`.
    ///   - device: where the memory lives; default `.cpu`.
    public init(_ values: [Float], shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws {
        try Tensor.validate(shape: shape, argument: "shape")
        let count = shape.reduce(1, *)
        guard values.count == count else { throw FusedNormError.countMismatch(expected: count, actual: values.count) }
        try self.init(allocating: shape, dtype: dtype, on: device)
        try write(values)
    }

    /// Creates a rank-1 tensor from values.
    public init(_ values: [Float], dtype: DType = .float32, device: Device = .cpu) throws {
        try self.init(values, shape: [values.count], dtype: dtype, device: device)
    }

    /// A contiguous tensor with every element equal to `value` (rounded to `dtype`).
    public init(repeating value: Float, shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws {
        try self.init(allocating: shape, dtype: dtype, on: device)
        try fill(with: value)
    }

    /// A contiguous tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Tensor(repeating: 0, shape: shape, dtype: dtype, device: device)
    }

    /// A contiguous tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Tensor(repeating: 1, shape: shape, dtype: dtype, device: device)
    }

    /// The values in row-major order, converted exactly to `Float`. Waits for pending work on the tensor's device.
    public func toArray() throws -> [Float] {
        if dtype == .float32 { return try toArray(of: Float.self) }
        let rows = self.rows, columns = self.columns
        let rowBytes = columns * dtype.byteCount
        var encoded = [UInt8](repeating: 0, count: rows * rowBytes)
        if rows > 0, columns > 0 {
            try encoded.withUnsafeMutableBytes { host in
                try download(into: host.baseAddress!)
            }
        }
        return encoded.withUnsafeBytes { dtype.decode($0, count: rows * columns) }
    }

    /// Overwrites every element of this view with `values` (row-major, rounded to ``dtype``);
    /// memory between strided rows is left alone.
    public func write(_ values: [Float]) throws {
        guard values.count == count else { throw FusedNormError.countMismatch(expected: count, actual: values.count) }
        try requireWritable("tensor")
        guard count > 0 else { return }
        if dtype == .float32 {
            try values.withUnsafeBytes { try upload(from: $0.baseAddress!) }
            return
        }
        let encoded = dtype.encode(values)
        try encoded.withUnsafeBytes { host in
            try upload(from: host.baseAddress!)
        }
    }

    /// Sets every element of this view to `value` (NaN included, to poison outputs in tests).
    public func fill(with value: Float) throws {
        try write([Float](repeating: value, count: count))
    }

    /// A copy of this tensor on `device`, contiguous.
    public func to(_ device: Device) throws -> Tensor {
        try Tensor(toArray(), shape: shape, dtype: dtype, device: device)
    }

    /// A contiguous copy with elements rounded to `dtype`.
    public func converted(to dtype: DType) throws -> Tensor {
        try Tensor(toArray(), shape: shape, dtype: dtype, device: device)
    }
}

extension Tensor {
    /// Copies the rows, packed, into host memory of at least `count * dtype.byteCount` bytes; waits for the device.
    func download(into host: UnsafeMutableRawPointer) throws {
        try requireAccessible("tensor")
        MemoryCounters.recordCopy()
        let rowBytes = columns * dtype.byteCount
        let backend = try device.backend()
        for run in rowView.runs(rows: rows) {
            try backend.download(
                rows: run.count, rowBytes: rowBytes, from: run.address, pitch: run.pitch,
                to: host + run.firstRow * rowBytes, destinationPitch: rowBytes)
        }
    }

    /// Overwrites the rows from packed host memory of `count * dtype.byteCount` bytes.
    func upload(from host: UnsafeRawPointer) throws {
        try requireAccessible("tensor")
        try requireWritable("tensor")
        MemoryCounters.recordCopy()
        let rowBytes = columns * dtype.byteCount
        let backend = try device.backend()
        for run in rowView.runs(rows: rows) {
            try backend.upload(
                rows: run.count, rowBytes: rowBytes, from: host + run.firstRow * rowBytes, sourcePitch: rowBytes,
                to: run.address, pitch: run.pitch)
        }
    }
}

extension DType {
    /// Packs floats into this dtype's little-endian bytes, rounding to nearest even.
    func encode(_ values: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * byteCount)
        bytes.withUnsafeMutableBytes { raw in
            switch self {
            case .float32:
                for (i, v) in values.enumerated() { raw.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self) }
            case .float16:
                for (i, v) in values.enumerated() {
                    raw.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .bfloat16:
                for (i, v) in values.enumerated() {
                    raw.storeBytes(of: BFloat16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
        }
        return bytes
    }

    /// Unpacks `count` values of this dtype into floats.
    func decode(_ raw: UnsafeRawBufferPointer, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch self {
            case .float32:
                for i in 0..<count { out[i] = raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            case .float16:
                for i in 0..<count {
                    out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .bfloat16:
                for i in 0..<count {
                    out[i] = Float(BFloat16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
            initialized = count
        }
    }
}

extension Tensor {
    /// Copies this tensor's elements into `destination`, a tensor of the same shape, dtype and device
    /// (either may be a strided view).
    public func copy(into destination: Tensor) throws {
        try requireCopyable(into: destination)
        MemoryCounters.recordCopy()
        guard count > 0 else { return }
        let rowBytes = columns * dtype.byteCount
        let backend = try device.backend()
        if isContiguous, destination.isContiguous {
            try backend.copy(
                rows: 1, rowBytes: rows * rowBytes, from: rowView.address, sourcePitch: rows * rowBytes,
                to: destination.rowView.address, pitch: rows * rowBytes)
            return
        }
        let source = rowView, target = destination.rowView
        if !source.isGrouped, !target.isGrouped {
            try backend.copy(
                rows: rows, rowBytes: rowBytes, from: source.address, sourcePitch: source.rowStride * dtype.byteCount,
                to: target.address, pitch: target.rowStride * dtype.byteCount)
            return
        }
        // Grouped rows on either side: runs of rows within one group of each side, each one pitched copy.
        var first = 0
        while first < rows {
            let end = min(source.endOfGroup(containing: first), target.endOfGroup(containing: first), rows)
            try backend.copy(
                rows: end - first, rowBytes: rowBytes,
                from: source.address(row: first), sourcePitch: source.rowStride * dtype.byteCount,
                to: target.address(row: first), pitch: target.rowStride * dtype.byteCount)
            first = end
        }
    }
}
