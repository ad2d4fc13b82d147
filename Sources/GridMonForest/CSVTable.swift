import GridMonCore

/// A CSV file of numbers with a header row, as training and test data come.
///
/// Deliberately strict: comma-separated, one header row, every row the header's width,
/// every cell a finite number (surrounding spaces allowed). Anything else is an error that
/// names the file, the line and the column, so a bad file is fixed rather than half-read.
/// Pure: parses text it is given.
public struct CSVTable: Sendable {
    public var columns: [String]
    public var rows: [[Double]]

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var reason: String
        public var description: String { line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)" }

        public init(file: String, line: Int, reason: String) {
            self.file = file
            self.line = line
            self.reason = reason
        }
    }

    /// Parses `text`; `file` names it in errors.
    public init(parsing text: String, file: String) throws(ParseError) {
        // Split on any line break; Swift reads "\r\n" as one Character, so this covers CRLF files.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        while let last = lines.last, last.allSatisfy({ $0 == " " }) { lines.removeLast() }
        guard let headerLine = lines.first, !headerLine.isEmpty else {
            throw ParseError(file: file, line: 0, reason: "empty file (expected a header row)")
        }
        columns = headerLine.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
        if let empty = columns.firstIndex(of: "") {
            throw ParseError(file: file, line: 1, reason: "header column \(empty + 1) has no name")
        }
        if Set(columns).count != columns.count { throw ParseError(file: file, line: 1, reason: "header repeats a column name") }
        if columns.allSatisfy({ Double($0) != nil }) {
            throw ParseError(file: file, line: 1, reason: "the first row is all numbers: a header row is required")
        }
        rows = []
        rows.reserveCapacity(lines.count - 1)
        for (index, line) in lines.enumerated().dropFirst() {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            guard cells.count == columns.count else {
                throw ParseError(file: file, line: index + 1, reason: "\(cells.count) fields, the header has \(columns.count)")
            }
            var row: [Double] = []
            row.reserveCapacity(cells.count)
            for (c, cell) in cells.enumerated() {
                let text = String(cell).trimmingSpaces()
                guard let value = Double(text), value.isFinite else {
                    throw ParseError(file: file, line: index + 1, reason: "column \(columns[c]): '\(text)' is not a finite number")
                }
                row.append(value)
            }
            rows.append(row)
        }
        if rows.isEmpty { throw ParseError(file: file, line: 0, reason: "no data rows after the header") }
    }

    /// The given columns of every row, as a feature matrix.
    /// - Throws: naming the first requested column the file does not have.
    public func matrix(columns wanted: [String], file: String) throws(ParseError) -> FeatureMatrix {
        var indices: [Int] = []
        for name in wanted {
            guard let index = columns.firstIndex(of: name) else {
                throw ParseError(file: file, line: 1, reason: "no column '\(name)' (columns: \(columns.joined(separator: ", ")))")
            }
            indices.append(index)
        }
        var matrix = FeatureMatrix(columns: wanted.count)
        matrix.reserve(rows: rows.count)
        for row in rows { matrix.append(indices.map { row[$0] }) }
        return matrix
    }
}
