/// A plain-text table with a header row, columns padded to their widest cell.
struct TextTable {
    /// How a column's cells are aligned.
    enum Alignment { case left, right }

    var headers: [String]
    var alignments: [Alignment]
    private(set) var rows: [[String]] = []

    /// A table whose columns are left-aligned unless `alignments` says otherwise.
    init(headers: [String], alignments: [Alignment]? = nil) {
        self.headers = headers
        self.alignments = alignments ?? Array(repeating: .left, count: headers.count)
    }

    mutating func append(_ row: [String]) {
        precondition(row.count == headers.count, "a table row needs \(headers.count) cells")
        rows.append(row)
    }

    /// The header, a rule and the rows, one string per line, without trailing spaces.
    var lines: [String] {
        let widths = headers.indices.map { column in ([headers] + rows).map { $0[column].count }.max() ?? 0 }
        func render(_ cells: [String]) -> String {
            let line = cells.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - cells[column].count)
                return alignments[column] == .left ? cells[column] + padding : padding + cells[column]
            }.joined(separator: "  ")
            return String(line.reversed().drop(while: { $0 == " " }).reversed())
        }
        return [render(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
            + rows.map(render)
    }
}
