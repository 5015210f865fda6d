import Testing

@testable import FusedNormCLI

/// The CPU's measurement: calls interleaved round by round, each run between two copies.
struct BenchSamplerTests {
    /// A timer that does not measure: a run of the call named n takes `seconds[n](i)` seconds, where i is
    /// the run's index as the sampler gives it; `log` lists the runs in order.
    final class ScriptedRuns: BenchTimer {
        var log: [String] = []
        var seconds: [String: (Int) -> Double] = [:]
        private var last = (name: "", run: 0)

        func call(_ name: String, bytes: Int) -> BenchCall {
            BenchCall(bytes: bytes) { run in
                self.log.append("\(name)\(run)")
                self.last = (name, run)
            }
        }

        func time(runs count: Int, _ work: (Int) throws -> Void) throws -> BenchTiming {
            BenchTiming(
                seconds: try (0..<count).map { run in
                    try work(run)
                    return seconds[last.name]!(last.run)
                })
        }
    }

    @Test
    func callsRunInRoundsEachBetweenTwoCopies() throws {
        let timer = ScriptedRuns()
        timer.seconds = ["copy": { _ in 1 }, "a": { _ in 1 }, "b": { _ in 2 }]
        let sampler = BenchSampler(timer: timer, warmups: 1, repeats: 3, timeLimit: 100)
        var rounds: [Int] = []
        let samples = try sampler.measure(
            [(timer.call("a", bytes: 100), 0), (timer.call("b", bytes: 100), 0)],
            copies: [timer.call("copy", bytes: 100)]
        ) { rounds.append($0) }
        #expect(
            timer.log == [
                "copy0", "a0", "b0",  // warm-up
                "copy1", "a1", "copy2", "b1", "copy3",
                "a2", "copy4", "b2", "copy5",
                "a3", "copy6", "b3", "copy7",
            ])
        #expect(rounds == [0, 1, 2])
        #expect(samples.map(\.repeats) == [3, 3])
        #expect(samples.map(\.medianSeconds) == [1, 2])
        #expect(samples.map(\.fractionOfCopy) == [1, 0.5])
        #expect(samples.map(\.copyMedianSeconds) == [1, 1])
    }

    @Test
    func eachRunIsComparedWithTheCopiesAroundIt() throws {
        // The machine runs at half speed during the second round (a1, b1 and the copies around them): the
        // ratios of those runs, and so the medians, stay what they are at full speed.
        let timer = ScriptedRuns()
        timer.seconds = [
            "copy": { run in (2...4).contains(run) ? 2 : 1 },
            "a": { run in run == 1 ? 2 : 1 }, "b": { run in run == 1 ? 4 : 2 },
        ]
        let sampler = BenchSampler(timer: timer, warmups: 0, repeats: 3, timeLimit: 100)
        let samples = try sampler.measure(
            [(timer.call("a", bytes: 100), 0), (timer.call("b", bytes: 100), 0)],
            copies: [timer.call("copy", bytes: 100)])
        #expect(
            timer.log == [
                "copy0", "a0", "copy1", "b0", "copy2", "a1", "copy3", "b1", "copy4", "a2", "copy5", "b2", "copy6",
            ])
        #expect(samples.map(\.fractionOfCopy) == [1, 0.5])
        #expect(samples.map(\.medianSeconds) == [1, 2])
    }

    @Test
    func eachRunIsBetweenTwoCopiesOfItsOwnYardstick() throws {
        // a and b are measured against copy "c", x against copy "d" (another dtype's arena, twice as fast).
        let timer = ScriptedRuns()
        timer.seconds = ["c": { _ in 1 }, "d": { _ in 0.5 }, "a": { _ in 1 }, "b": { _ in 2 }, "x": { _ in 1 }]
        let sampler = BenchSampler(timer: timer, warmups: 1, repeats: 2, timeLimit: 100)
        let samples = try sampler.measure(
            [(timer.call("a", bytes: 100), 0), (timer.call("b", bytes: 100), 0), (timer.call("x", bytes: 100), 1)],
            copies: [timer.call("c", bytes: 100), timer.call("d", bytes: 100)])
        #expect(
            timer.log == [
                "c0", "d0", "a0", "b0", "x0",  // warm-up
                "c1", "a1", "c2", "b1", "c3", "d1", "x1", "d2",
                "c4", "a2", "c5", "b2", "c6", "d3", "x2", "d4",
            ])
        #expect(samples.map(\.fractionOfCopy) == [1, 0.5, 0.5])  // x against c would be 1
        #expect(samples.map(\.copyMedianSeconds) == [1, 1, 0.5])
    }

    @Test
    func aCallStopsOnceItsRunsTookTheTimeLimit() throws {
        let timer = ScriptedRuns()
        timer.seconds = ["copy": { _ in 0.25 }, "fast": { _ in 0.25 }, "slow": { _ in 3 }]
        let sampler = BenchSampler(timer: timer, warmups: 0, repeats: 5, timeLimit: 2)
        let samples = try sampler.measure(
            [(timer.call("fast", bytes: 1), 0), (timer.call("slow", bytes: 1), 0)],
            copies: [timer.call("copy", bytes: 1)])
        // fast: 0.5 s per run with the copy after it, so four runs reach 2 s; slow: one run.
        #expect(samples.map(\.repeats) == [4, 1])
    }

    @Test
    func aYardstickOfTwoCopiesRunsBothAroundEveryRunAndReportsTheFaster() throws {
        // "m" (memcpy) takes 2 s, "s" (streaming) 1 s: every run of a call is between one run of each, and its
        // fraction is of "s", the faster; the fraction of "m" is kept too.
        let timer = ScriptedRuns()
        timer.seconds = ["m": { _ in 2 }, "s": { _ in 1 }, "a": { _ in 1 }, "b": { _ in 2 }]
        let sampler = BenchSampler(timer: timer, warmups: 1, repeats: 2, timeLimit: 100)
        let samples = try sampler.measure(
            [(timer.call("a", bytes: 100), 0), (timer.call("b", bytes: 100), 0)],
            yardsticks: [[timer.call("m", bytes: 100), timer.call("s", bytes: 100)]])
        #expect(
            timer.log == [
                "m0", "s0", "a0", "b0",  // warm-up
                "m1", "s1", "a1", "m2", "s2", "b1", "m3", "s3",
                "a2", "m4", "s4", "b2", "m5", "s5",
            ])
        #expect(samples.map(\.fasterCopy) == [1, 1])
        #expect(samples.map(\.copyMedianSeconds) == [1, 1])
        #expect(samples.map(\.fractionOfCopy) == [1, 0.5])
        #expect(samples.map { $0.copies.map(\.fraction) } == [[2, 1], [1, 0.5]])
        #expect(samples.map { $0.copies.map(\.medianSeconds) } == [[2, 1], [2, 1]])
    }

    @Test
    func theFasterCopyIsChosenByItsMedianNotItsPlace() throws {
        // Here the first copy is the faster one.
        let timer = ScriptedRuns()
        timer.seconds = ["m": { _ in 0.5 }, "s": { _ in 1 }, "a": { _ in 1 }]
        let sampler = BenchSampler(timer: timer, warmups: 0, repeats: 3, timeLimit: 100)
        let samples = try sampler.measure(
            [(timer.call("a", bytes: 100), 0)],
            yardsticks: [[timer.call("m", bytes: 100), timer.call("s", bytes: 100)]])
        #expect(samples.map(\.fasterCopy) == [0])
        #expect(samples.map(\.fractionOfCopy) == [0.5])
    }
}
