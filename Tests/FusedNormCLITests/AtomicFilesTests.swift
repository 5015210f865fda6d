import Foundation
import Testing

@testable import FusedNormCLI

/// Files written together appear together or not at all.
struct AtomicFilesTests {
    @Test
    func allFilesAppearWithTheirContents() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try AtomicFiles.writeAll([
            AtomicFiles.Entry(path: folder.file("a"), contents: [1, 2, 3]),
            AtomicFiles.Entry(path: folder.file("b"), contents: []),
        ])
        #expect(try folder.contents() == ["a", "b"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder.file("a"))) == Data([1, 2, 3]))
    }

    @Test
    func aFailureLeavesNothingBehindAndKeepsExistingFiles() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("a", bytes: [9])
        #expect(throws: CLIError.self) {
            try AtomicFiles.writeAll([
                AtomicFiles.Entry(path: folder.file("a"), contents: [1]),
                AtomicFiles.Entry(path: folder.file("missing/b"), contents: [2]),
            ])
        }
        #expect(try folder.contents() == ["a"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder.file("a"))) == Data([9]))
    }
}
