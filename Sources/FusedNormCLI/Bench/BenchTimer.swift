import FusedNorm

/// The times of consecutive runs of one call, as a ``BenchTimer`` measured them.
struct BenchTiming {
    /// Seconds each run took on the device.
    var seconds: [Double]
    /// Host seconds spent queuing one run, when the timer can tell them apart from device time.
    var hostSecondsPerRun: Double?
}

/// Measures how long work submitted to a device takes.
protocol BenchTimer {
    /// Times `count` runs of `work`, called with `0..<count` in order.
    func time(runs count: Int, _ work: (Int) throws -> Void) throws -> BenchTiming
}

/// Times each run with the host's monotonic clock around the call followed by `device.synchronize()`.
/// Serves every device; on a GPU it includes launch overhead.
struct HostClockTimer: BenchTimer {
    var device: Device

    func time(runs count: Int, _ work: (Int) throws -> Void) throws -> BenchTiming {
        var seconds: [Double] = []
        for run in 0..<count {
            try device.synchronize()  // earlier work must not be counted
            let start = ContinuousClock.now
            try work(run)
            try device.synchronize()
            seconds.append((ContinuousClock.now - start).seconds)
        }
        return BenchTiming(seconds: seconds)
    }
}

/// Times GPU runs with CUDA events recorded between them on the stream.
///
/// `busyWork` (large copies) is queued first, so that the GPU is busy while the host queues the timed
/// runs and no launch gap is timed; then an event before the first run and after every run; the time of
/// run i is the time between events i and i + 1.
struct CUDAEventTimer: BenchTimer {
    var device: Device
    var busyWork: () throws -> Void

    func time(runs count: Int, _ work: (Int) throws -> Void) throws -> BenchTiming {
        let events = try (0...count).map { _ in try CUDAEvent(device: device) }
        try device.synchronize()
        try busyWork()
        let hostStart = ContinuousClock.now
        try events[0].record()
        for run in 0..<count {
            try work(run)
            try events[run + 1].record()
        }
        let hostSeconds = (ContinuousClock.now - hostStart).seconds
        try events[count].synchronize()
        let seconds = try (0..<count).map { Double(try events[$0 + 1].elapsedMilliseconds(since: events[$0])) / 1000 }
        return BenchTiming(seconds: seconds, hostSecondsPerRun: hostSeconds / Double(count))
    }
}

/// The median of repeated timings after warm-up runs.
struct BenchSampler {
    var timer: any BenchTimer
    /// Untimed runs first (caches, page faults, kernel compilation).
    var warmups: Int
    /// The most timed runs of one measurement.
    var repeats: Int
    /// Stop adding timed runs once they took this many seconds together (after at least one).
    var timeLimit: Double

    /// A measurement: the median over the timed runs, how many there were, and host time per run when known.
    struct Sample {
        var medianSeconds: Double
        var repeats: Int
        var hostSecondsPerRun: Double?
    }

    /// Runs `call` ``warmups`` times, then times it: one run, then as many more as fit in the time limit
    /// (up to ``repeats``) in one batch. Run `i` overall is `call.run(i)`.
    func measure(_ call: BenchCall) throws -> Sample {
        for run in 0..<warmups { try call.run(run) }
        var seconds: [Double] = [], hostSeconds = 0.0, hostRuns = 0
        while seconds.count < repeats {
            let spent = seconds.reduce(0, +)
            if !seconds.isEmpty, spent >= timeLimit { break }
            let count = seconds.isEmpty
                ? 1 : min(repeats - seconds.count, max(1, Int((timeLimit - spent) / max(seconds.max()!, 1e-9))))
            let first = warmups + seconds.count
            let timing = try timer.time(runs: count) { try call.run(first + $0) }
            seconds += timing.seconds
            if let host = timing.hostSecondsPerRun {
                hostSeconds += host * Double(count)
                hostRuns += count
            }
        }
        return Sample(
            medianSeconds: median(seconds), repeats: seconds.count,
            hostSecondsPerRun: hostRuns > 0 ? hostSeconds / Double(hostRuns) : nil)
    }

    /// The middle value (the mean of the two middle values for an even count).
    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// A kernel measured in alternation with the copy yardstick (the CPU's method; see ``BenchCommand``).
    struct PairedSample {
        /// The median over the kernel's timed runs.
        var medianSeconds: Double
        /// The median over the copy runs of the same window.
        var copyMedianSeconds: Double
        /// The median over the kernel runs of (kernel GB/s) / (GB/s of the copies just before and after it).
        var fractionOfCopy: Double
        var repeats: Int
    }

    /// Runs `call` and `copy` ``warmups`` times each, then times them in alternation, copy first and last:
    /// copy, kernel, copy, kernel, ..., kernel, copy, for up to ``repeats`` kernel runs (at least one, then
    /// as many as fit in the time limit). Kernel run i is compared with the mean time of the two copies
    /// around it, so that both see the same state of a shared machine; the fraction is the median of
    /// those per-run ratios.
    func measure(_ call: BenchCall, against copy: BenchCall) throws -> PairedSample {
        for run in 0..<warmups {
            try copy.run(run)
            try call.run(run)
        }
        func timed(_ work: BenchCall, _ run: Int) throws -> Double {
            try timer.time(runs: 1) { _ in try work.run(run) }.seconds[0]
        }
        var copies = [try timed(copy, warmups)], kernels: [Double] = []
        while kernels.count < repeats, kernels.isEmpty || kernels.reduce(0, +) + copies.reduce(0, +) < timeLimit {
            kernels.append(try timed(call, warmups + kernels.count))
            copies.append(try timed(copy, warmups + copies.count))
        }
        let ratios = kernels.indices.map { i in
            (Double(call.bytes) / kernels[i]) / (Double(copy.bytes) / ((copies[i] + copies[i + 1]) / 2))
        }
        return PairedSample(
            medianSeconds: median(kernels), copyMedianSeconds: median(copies), fractionOfCopy: median(ratios),
            repeats: kernels.count)
    }
}
