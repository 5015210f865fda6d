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
            let count =
                seconds.isEmpty
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
        /// The median over the runs of the yardstick's faster copy (``fasterCopy``) just before and after the kernel's runs.
        var copyMedianSeconds: Double
        /// The median over the kernel runs of (kernel GB/s) / (GB/s of the faster copy's runs just before and after it).
        var fractionOfCopy: Double
        var repeats: Int
        /// Each copy of the yardstick, in its order: the median of its runs around the kernel's runs, and the
        /// kernel's fraction of it (as ``fractionOfCopy``).
        var copies: [(medianSeconds: Double, fraction: Double)] = []
        /// The index in ``copies`` of the copy with the highest median GB/s: the one ``copyMedianSeconds`` and
        /// ``fractionOfCopy`` are of.
        var fasterCopy = 0
    }

    /// ``measure(_:yardsticks:round:)`` with yardsticks of one copy each.
    func measure(_ calls: [(call: BenchCall, copy: Int)], copies: [BenchCall], round: (Int) -> Void = { _ in }) throws
        -> [PairedSample]
    {
        try measure(calls, yardsticks: copies.map { [$0] }, round: round)
    }

    /// Measures each call in alternation with its copy yardstick (`yardsticks[copy]`: one or more copies, e.g.
    /// `memcpy` and a copy with non-temporal stores, each run in turn wherever the yardstick runs), interleaved:
    /// after ``warmups`` runs of every copy and every call, rounds follow, and in each round every call still
    /// measuring runs once, each run between two runs of its yardstick (yardstick, first call, yardstick, second
    /// call, ..., last call, yardstick; where a call's yardstick differs from the one before it, one more run of
    /// its own comes first). A call stops after ``repeats`` runs, or once its runs and the yardsticks after
    /// them took ``timeLimit`` seconds (after at least one run).
    ///
    /// Kernel run i is compared with the mean time of each copy's two runs around it, so that both see the same
    /// state of a shared machine; a call's fraction of a copy is the median of those per-run ratios, and its
    /// reported fraction is that of the copy with the highest median GB/s. Interleaving
    /// the calls spreads a slow spell of the host (seconds to minutes in which every thread runs at about
    /// half speed) over the runs of every call, one run each, instead of over all the runs of the one call
    /// measured then: the medians of calls measured together then compare with each other, not only with
    /// the copy, and the longer the rounds take together, the smaller the share of any one spell.
    /// - Parameter round: called before each round with its index (from 0).
    func measure(_ calls: [(call: BenchCall, copy: Int)], yardsticks: [[BenchCall]], round: (Int) -> Void = { _ in })
        throws -> [PairedSample]
    {
        for run in 0..<warmups {
            for yardstick in yardsticks { for copy in yardstick { try copy.run(run) } }
            for call in calls { try call.call.run(run) }
        }
        var copyRuns = [Int](repeating: warmups, count: yardsticks.count)
        func timed(_ work: BenchCall, _ run: Int) throws -> Double {
            try timer.time(runs: 1) { _ in try work.run(run) }.seconds[0]
        }
        /// One run of every copy of a yardstick: their seconds.
        func timedYardstick(_ index: Int) throws -> [Double] {
            defer { copyRuns[index] += 1 }
            return try yardsticks[index].map { try timed($0, copyRuns[index]) }
        }
        var kernels = [[Double]](repeating: [], count: calls.count)
        var copiesAround = [[(before: [Double], after: [Double])]](repeating: [], count: calls.count)
        var spent = [Double](repeating: 0, count: calls.count)
        var lastYardstick: (index: Int, seconds: [Double])?
        for index in 0..<repeats {
            let measuring = calls.indices.filter { kernels[$0].isEmpty || spent[$0] < timeLimit }
            if measuring.isEmpty { break }
            round(index)
            for i in measuring {
                let copy = calls[i].copy
                let before = try lastYardstick.flatMap { $0.index == copy ? $0.seconds : nil } ?? timedYardstick(copy)
                let seconds = try timed(calls[i].call, warmups + kernels[i].count)
                let after = try timedYardstick(copy)
                kernels[i].append(seconds)
                copiesAround[i].append((before, after))
                spent[i] += seconds + after.reduce(0, +)
                lastYardstick = (copy, after)
            }
        }
        return calls.indices.map { i in
            let yardstick = yardsticks[calls[i].copy]
            let copies = yardstick.indices.map { k in
                let copyBytes = Double(yardstick[k].bytes)
                let ratios = zip(kernels[i], copiesAround[i]).map { seconds, around in
                    (Double(calls[i].call.bytes) / seconds) / (copyBytes / ((around.before[k] + around.after[k]) / 2))
                }
                return (
                    medianSeconds: median(copiesAround[i].flatMap { [$0.before[k], $0.after[k]] }),
                    fraction: median(ratios)
                )
            }
            let faster = copies.indices.max {
                Double(yardstick[$0].bytes) / copies[$0].medianSeconds < Double(yardstick[$1].bytes)
                    / copies[$1].medianSeconds
            }!
            return PairedSample(
                medianSeconds: median(kernels[i]), copyMedianSeconds: copies[faster].medianSeconds,
                fractionOfCopy: copies[faster].fraction, repeats: kernels[i].count, copies: copies, fasterCopy: faster)
        }
    }
}
