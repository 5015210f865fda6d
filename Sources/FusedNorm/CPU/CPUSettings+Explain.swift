extension CPUSettings {
    /// Threads the CPU backend splits `rows` rows of `columns` elements over: ``threadCount`` at most, fewer
    /// when a thread would get less than 2^15 elements of work (the rule of `ParallelRows.run`), for
    /// `fusednorm explain`.
    /// - Parameters:
    ///   - rows: rows of the problem.
    ///   - columns: N.
    @_spi(Explain) public static func threadsUsed(rows: Int, columns: Int) -> Int {
        guard rows > 0 else { return 0 }
        let (work, overflow) = rows.multipliedReportingOverflow(by: max(columns, 1))
        let affordable = overflow ? Int.max : max(work / ParallelRows.minimumWorkPerTask, 1)
        return min(threadCount, rows, affordable)
    }
}
