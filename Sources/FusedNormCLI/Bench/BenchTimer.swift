import FusedNorm

/// Measures how long work submitted to a device takes.
///
/// ``HostClockTimer`` serves every device; a GPU timer based on CUDA events (recorded on the stream
/// around the work, then synchronized and read with `cuEventElapsedTime`) can implement the same protocol.
protocol BenchTimer {
    /// Seconds from submitting `work` to the device until it has finished there.
    func time(_ work: () throws -> Void) throws -> Double
}

/// Times with the host's monotonic clock around the call followed by `device.synchronize()`.
struct HostClockTimer: BenchTimer {
    var device: Device

    func time(_ work: () throws -> Void) throws -> Double {
        try device.synchronize()  // earlier work must not be counted
        let start = ContinuousClock.now
        try work()
        try device.synchronize()
        return (ContinuousClock.now - start).seconds
    }
}

/// The median of repeated timings after a warm-up run.
struct BenchSampler {
    var timer: any BenchTimer
    /// The most timed runs of one measurement.
    var repeats: Int
    /// Stop repeating once the timed runs took this long together (after at least one).
    var timeLimit: Double

    /// A measurement: the median and how many timed runs it is the median of.
    struct Sample {
        var medianSeconds: Double
        var repeats: Int
    }

    /// Runs `work` once untimed (caches, page faults, kernel compilation), then times it up to ``repeats`` times.
    func measure(_ work: () throws -> Void) throws -> Sample {
        try work()
        var times: [Double] = []
        while times.count < repeats, times.reduce(0, +) < timeLimit || times.isEmpty {
            times.append(try timer.time(work))
        }
        return Sample(medianSeconds: median(times), repeats: times.count)
    }

    /// The middle value (the mean of the two middle values for an even count).
    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
