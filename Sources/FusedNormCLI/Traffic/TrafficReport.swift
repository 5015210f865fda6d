import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What `fusednorm traffic` prints: every kernel of every implementation with its bytes, the totals and the
/// predicted times, and measured times when FusedNorm ran.
struct TrafficReport: Encodable {
    /// The bandwidth the times are predicted at.
    struct Bandwidth: Encodable {
        var source: String
        var gbps: Double
    }

    /// One kernel's bytes at this shape.
    struct KernelBytes: Encodable {
        var name: String
        var reads: [String]
        var writes: [String]
        var readBytes: Int
        var writeBytes: Int
    }

    /// One implementation of one pass.
    struct Implementation: Encodable {
        var name: String
        var pass: String
        var kernels: [KernelBytes]
        var bytes: Int
        var predictedMicroseconds: Double?
        var measuredMicroseconds: Double?
        var note: String?
    }

    var op: String
    var dtype: String
    var residual: Bool
    var rows: Int
    var cols: Int
    var bandwidth: Bandwidth?
    var implementations: [Implementation] = []

    init(model: TrafficModel, rows: Int, columns: Int) {
        op = model.norm.rawValue
        dtype = model.dtype.rawValue
        residual = model.residual
        self.rows = rows
        cols = columns
        func implementation(_ name: String, _ pass: String, _ kernels: [TrafficModel.Kernel], note: String? = nil)
            -> Implementation
        {
            let described = kernels.map { kernel in
                KernelBytes(
                    name: kernel.name, reads: kernel.reads.map(\.name), writes: kernel.writes.map(\.name),
                    readBytes: kernel.readBytes(rows: rows, columns: columns),
                    writeBytes: kernel.writeBytes(rows: rows, columns: columns))
            }
            return Implementation(
                name: name, pass: pass, kernels: described, bytes: kernels.bytes(rows: rows, columns: columns),
                note: note)
        }
        let fused = model.pytorchFused, floor = model.fusedFloor(rows: rows, columns: columns)
        let floorKernel = "fusednorm \(model.norm.rawValue)" + (model.residual ? " (residual fused)" : "")
        implementations = [
            implementation("eager (Hugging Face formula)", "forward", model.eagerForward),
            implementation("PyTorch fused", "forward", fused.forward),
            Implementation(
                name: "FusedNorm (floor)", pass: "forward",
                kernels: [KernelBytes(name: floorKernel, reads: [], writes: [], readBytes: 0, writeBytes: 0)],
                bytes: floor.forward, note: floor.note),
            implementation("eager (Hugging Face formula)", "backward", model.eagerBackward),
            implementation("PyTorch fused", "backward", fused.backward),
            Implementation(
                name: "FusedNorm (floor)", pass: "backward",
                kernels: [
                    KernelBytes(name: floorKernel + " backward", reads: [], writes: [], readBytes: 0, writeBytes: 0)
                ],
                bytes: floor.backward, note: floor.note),
        ]
    }

    /// Fills in the predicted times at ``bandwidth``.
    mutating func predict() {
        guard let bandwidth else { return }
        for index in implementations.indices {
            implementations[index].predictedMicroseconds =
                Double(implementations[index].bytes) / (bandwidth.gbps * 1e9) * 1e6
        }
    }

    static func megabytes(_ bytes: Int) -> String { String(printf: "%.3f", Double(bytes) / 1e6) }

    var lines: [String] {
        var report = self
        report.predict()
        var lines = [
            "fusednorm traffic: \(op)\(residual ? " with the residual add" : ""), \(rows) x \(cols) \(dtype) (bytes to and from device memory; MB = 10^6 bytes)"
        ]
        for pass in ["forward", "backward"] {
            for implementation in report.implementations
            where implementation.pass == pass && implementation.name.hasPrefix("eager") {
                lines += ["", "Eager \(pass), kernel by kernel (\(implementation.kernels.count) kernels):"]
                var table = TextTable(
                    headers: ["#", "kernel", "reads", "writes", "read MB", "write MB"],
                    alignments: [.right, .left, .left, .left, .right, .right])
                for (index, kernel) in implementation.kernels.enumerated() {
                    table.append([
                        "\(index + 1)", kernel.name, kernel.reads.joined(separator: ", "),
                        kernel.writes.joined(separator: ", "),
                        Self.megabytes(kernel.readBytes), Self.megabytes(kernel.writeBytes),
                    ])
                }
                lines += table.lines
            }
        }
        lines += [
            "",
            "Totals"
                + (bandwidth.map { ", predicted at " + String(printf: "%.0f", $0.gbps) + " GB/s (\($0.source))" } ?? "")
                + ":",
        ]
        var headers = ["pass", "implementation", "kernels", "MB", "x floor"]
        let measured = report.implementations.contains { $0.measuredMicroseconds != nil }
        if bandwidth != nil { headers.append("predicted us") }
        if measured { headers += ["measured us", "measured / predicted"] }
        var table = TextTable(
            headers: headers, alignments: [.left, .left] + Array(repeating: .right, count: headers.count - 2))
        for implementation in report.implementations {
            let floor = report.implementations.first {
                $0.pass == implementation.pass && $0.name.hasPrefix("FusedNorm")
            }!.bytes
            var cells = [
                implementation.pass, implementation.name, "\(implementation.kernels.count)",
                Self.megabytes(implementation.bytes),
                String(printf: "%.2f", Double(implementation.bytes) / Double(floor)),
            ]
            if let predicted = implementation.predictedMicroseconds { cells.append(String(printf: "%.1f", predicted)) }
            if measured {
                if let value = implementation.measuredMicroseconds, let predicted = implementation.predictedMicroseconds
                {
                    cells += [String(printf: "%.1f", value), String(printf: "%.2f", value / predicted)]
                } else {
                    cells += ["-", "-"]
                }
            }
            table.append(cells)
        }
        lines += table.lines
        for note in Set(report.implementations.compactMap(\.note)).sorted() { lines.append("FusedNorm floor: \(note)") }
        lines.append(
            "Eager and PyTorch-fused kernels: a model from PyTorch's autograd formulas, each tensor read and written whole,"
        )
        lines.append(
            "intermediates missing the cache; not yet checked against Nsight Compute's dram__bytes (docs/notes/traffic-model.md)."
        )
        return lines
    }

    func json() throws -> [UInt8] {
        var report = self
        report.predict()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(report)) + [10]
    }
}
