/// Rows of feature values, row-major, as 32-bit floats.
///
/// Float32 because scikit-learn's trees compare `float32(x) <= threshold`: holding features
/// the same way is what makes GridMon's scores equal scikit-learn's for a converted model.
public struct FeatureMatrix: Sendable, Equatable {
    public let columns: Int
    public private(set) var values: [Float]

    public init(columns: Int, values: [Float] = []) {
        precondition(columns > 0 && values.count % columns == 0, "values must hold whole rows")
        self.columns = columns
        self.values = values
    }

    /// Rows of Doubles, each of `columns` values.
    public init(columns: Int, rows: [[Double]]) {
        self.init(columns: columns)
        values.reserveCapacity(rows.count * columns)
        for row in rows { append(row) }
    }

    public var rows: Int { values.count / columns }

    public mutating func append(_ row: [Double]) {
        precondition(row.count == columns, "row has \(row.count) values, expected \(columns)")
        for value in row { values.append(Float(value)) }
    }

    mutating func appendRaw(_ row: ArraySlice<Float>) { values.append(contentsOf: row) }

    /// Appends one row already in Float32 (`columns` values).
    public mutating func append(floats row: ArraySlice<Float>) {
        precondition(row.count == columns, "row has \(row.count) values, expected \(columns)")
        values.append(contentsOf: row)
    }

    public mutating func reserve(rows: Int) { values.reserveCapacity(rows * columns) }

    public subscript(row: Int, column: Int) -> Float { values[row * columns + column] }

    /// The columns `indices` of every row, in that order (the whole matrix when they are all
    /// of its columns in order).
    public func selecting(_ indices: [Int]) -> FeatureMatrix {
        if indices == Array(0..<columns) { return self }
        var out = FeatureMatrix(columns: indices.count)
        out.values.reserveCapacity(rows * indices.count)
        for r in 0..<rows {
            for c in indices { out.values.append(values[r * columns + c]) }
        }
        return out
    }

    /// The rows `indices`, in that order.
    public func selecting(rows indices: [Int]) -> FeatureMatrix {
        var out = FeatureMatrix(columns: columns)
        out.values.reserveCapacity(indices.count * columns)
        for i in indices { out.values.append(contentsOf: values[i * columns..<(i + 1) * columns]) }
        return out
    }
}
