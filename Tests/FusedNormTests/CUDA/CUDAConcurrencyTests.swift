import Foundation
import FusedNormReference
import Synchronization
import Testing

@testable import FusedNorm

@Suite("CUDA threads, streams, events and devices", .needsCUDAGPU)
struct CUDAConcurrencyTests {
    /// One RMSNorm on `device` from fresh inputs of `seed`, checked against the reference; returns the error.
    static func normError(seed: String, columns: Int, rows: Int, device: Device, dtype: DType = .bfloat16) throws
        -> Double
    {
        var random = CUDATestRandom(seed)
        let x = random.values(rows * columns, dtype: dtype), weight = random.values(columns, dtype: dtype, 0.5, 1.5)
        let y = try rmsNorm(
            try Tensor(x, shape: [rows, columns], dtype: dtype, device: device),
            weight: try Tensor(weight, dtype: dtype, device: device))
        let reference = Reference.rmsNorm(x: x, weight: weight, rows: rows, columns: columns, epsilon: 1e-6)
        return Reference.relativeError(try y.toArray(), reference.output)
    }

    @Test("two threads launching at once, each with its own shapes (and compiles), get their own right results")
    func twoThreads() throws {
        let failures = CUDATestFailures()
        runOnThreads(2) { thread in
            for iteration in 0..<12 {
                let columns = [64, 1000, 4096, 777][(iteration + thread) % 4] + thread
                do {
                    let error = try Self.normError(
                        seed: "thread \(thread) \(iteration)", columns: columns, rows: 9 + iteration, device: .cuda(0))
                    if error > Reference.tolerance(.bfloat16) {
                        failures.add("thread \(thread) iteration \(iteration): error \(error)")
                    }
                } catch {
                    failures.add("thread \(thread) iteration \(iteration): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
    }

    @Test("operations on a caller's stream; events time them; download sees the stream's results")
    func streamsAndEvents() throws {
        let stream = try CUDAStream(device: .cuda(0))
        let columns = 4096, rows = 512
        var random = CUDATestRandom("stream")
        let x = random.values(rows * columns, dtype: .float16),
            weight = random.values(columns, dtype: .float16, 0.5, 1.5)
        let xTensor = try Tensor(x, shape: [rows, columns], dtype: .float16, device: .cuda(0))
        let wTensor = try Tensor(weight, dtype: .float16, device: .cuda(0))
        _ = try rmsNorm(xTensor, weight: wTensor)  // compile outside the timed region
        let start = try CUDAEvent(), end = try CUDAEvent()
        let y = try CUDAStream.withCurrent(stream) {
            try start.record()
            var y = try rmsNorm(xTensor, weight: wTensor)
            for _ in 0..<9 { y = try rmsNorm(xTensor, weight: wTensor) }
            try end.record()
            return y
        }
        try end.synchronize()
        let milliseconds = try end.elapsedMilliseconds(since: start)
        #expect(milliseconds > 0 && milliseconds < 1000, "10 launches took \(milliseconds) ms")
        let reference = Reference.rmsNorm(x: x, weight: weight, rows: rows, columns: columns, epsilon: 1e-6)
        #expect(Reference.relativeError(try y.toArray(), reference.output) <= Reference.tolerance(.float16))

        // Ordering two streams with an event.
        let other = try CUDAStream(device: .cuda(0))
        let marker = try CUDAEvent()
        let z = try CUDAStream.withCurrent(stream) { () throws -> Tensor in
            let z = try rmsNorm(xTensor, weight: wTensor)
            try marker.record()
            return z
        }
        try other.wait(for: marker)
        let again = try CUDAStream.withCurrent(other) { try rmsNorm(z, weight: nil) }
        try other.synchronize()
        try stream.synchronize()
        try Device.cuda(0).synchronize()
        #expect(try again.toArray().allSatisfy(\.isFinite))
    }

    @Test("a stream of another device is not used; a CPU stream is refused")
    func streamDevices() throws {
        #expect(throws: FusedNormError.self) { try CUDAStream(device: .cpu) }
        #expect(throws: FusedNormError.self) { try CUDAStream(device: .cuda(CUDA.status.devices.count)) }
    }

    @Test(
        "two GPUs from one process, each with its own context",
        .enabled(if: CUDATestGPU.deviceCount >= 2, "needs two GPUs"))
    func twoDevices() throws {
        for device in [Device.cuda(0), .cuda(1), .cuda(0)] {
            let error = try Self.normError(seed: "device \(device)", columns: 5120, rows: 33, device: device)
            #expect(error <= Reference.tolerance(.bfloat16), "\(device): error \(error)")
        }
        // Both at once, from two threads.
        let failures = CUDATestFailures()
        runOnThreads(2) { index in
            for iteration in 0..<6 {
                do {
                    let error = try Self.normError(
                        seed: "gpu \(index) \(iteration)", columns: 2048 + 8 * iteration, rows: 17, device: .cuda(index)
                    )
                    if error > Reference.tolerance(.bfloat16) { failures.add("cuda:\(index): \(error)") }
                } catch {
                    failures.add("cuda:\(index): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        let x0 = try Tensor([1, 2, 3], device: .cuda(0)), x1 = try Tensor([1, 2, 3], device: .cuda(1))
        #expect(throws: FusedNormError.self) { try rmsNorm(x0, weight: x1) }
    }
}

/// Failures collected from several threads.
final class CUDATestFailures: Sendable {
    private let list = Mutex<[String]>([])
    func add(_ failure: String) { list.withLock { $0.append(failure) } }
    var all: [String] { list.withLock { $0 } }
}

/// Runs `body(i)` for i in 0..<count, each on its own thread, all at once; returns when all are done.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread.detachNewThread {
            body(index)
            done.leave()
        }
    }
    done.wait()
}
