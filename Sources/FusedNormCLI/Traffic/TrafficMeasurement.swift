import FusedNorm

/// `fusednorm traffic --device D`: the copy bandwidth measured on D (as `fusednorm bench` measures it), and
/// FusedNorm's forward and backward run on the shape there, timed the same way.
enum TrafficMeasurement {
    /// Elements of the copy that measures the bandwidth, at least (large enough to leave the caches).
    static let copyElements = 1 << 24

    static func measure(into report: inout TrafficReport, device: Device, console: Console) throws {
        let dtype = DType(name: report.dtype)!
        let shape = BenchShape(rows: report.rows, columns: report.cols)
        var generator = SeededGenerator(seed: 1)
        let arena = try BenchArena(
            dtype: dtype, device: device, capacity: max(copyElements, shape.outputSpan), rowStep: 1,
            generator: &generator)
        var sampler = BenchSampler(
            timer: HostClockTimer(device: device), warmups: device == .cpu ? 1 : 5, repeats: device == .cpu ? 15 : 50,
            timeLimit: 1)
        if case .cuda = device {
            let copy = try arena.copyCall()
            sampler.timer = CUDAEventTimer(device: device) { for run in 0..<8 { try copy.run(run) } }
        }
        let copy = try arena.copyCall()
        let copySeconds = try sampler.measure(copy).medianSeconds
        report.bandwidth = TrafficReport.Bandwidth(
            source: "copy measured on \(device), \(copy.bytes / dtype.byteCount / 2) \(dtype) elements",
            gbps: Double(copy.bytes) / copySeconds / 1e9)

        let operations: (forward: BenchOperation?, backward: BenchOperation) =
            switch (report.op, report.residual) {
            case ("layernorm", false): (.layernorm, .layernormBackward)
            case ("layernorm", true): (nil, .layernormBackward)
            case (_, false): (.rmsnorm, .rmsnormBackward)
            case (_, true): (.rmsnormResidual, .rmsnormBackward)
            }
        for (pass, operation) in [("forward", operations.forward), ("backward", operations.backward)] {
            guard let operation else { continue }
            console.printError(
                "timing FusedNorm \(operation.rawValue) \(report.rows) x \(report.cols) \(dtype) on \(device)")
            let call = try arena.call(
                operation, shape: shape, runs: sampler.warmups + sampler.repeats, generator: &generator)
            let seconds = try sampler.measure(call).medianSeconds
            if let index = report.implementations.firstIndex(where: {
                $0.pass == pass && $0.name.hasPrefix("FusedNorm")
            }) {
                report.implementations[index].measuredMicroseconds = seconds * 1e6
                report.implementations[index].kernels[0].name += " (measured: bench's \(operation.rawValue))"
            }
        }
    }
}
