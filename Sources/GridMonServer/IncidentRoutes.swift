import Foundation
import GridMonDetect

/// `GET /api/v1/incidents`: the open incidents (oldest first) and the most recent closed ones
/// (newest first), as JSON. Query: `tenant` (one tenant only), `limit` (default 100, at most
/// 1000, per list). Pure: answers from an `IncidentBook` snapshot.
enum IncidentRoutes {
    static let defaultLimit = 100
    static let maxLimit = 1000

    /// One incident as the API shows it.
    struct View: Encodable {
        var id: UInt64
        var tenant: String
        var node: String
        var state: String
        var startNs: Int64
        var endNs: Int64?
        var openedNs: Int64
        var durationS: Double?
        var peakScore: Double
        var flagged: Int
        var drivers: [IncidentDriver]
        var summary: String

        init(_ i: Incident) {
            id = i.id
            tenant = i.tenant
            node = i.node
            state = i.isOpen ? "open" : "closed"
            startNs = i.startNs
            endNs = i.endNs
            openedNs = i.openedNs
            durationS = i.endNs.map { Double($0 - i.startNs) / 1e9 }
            peakScore = i.peakScore.isFinite ? i.peakScore : 0
            flagged = i.flagged
            drivers = i.drivers
            summary = i.summary
        }
    }

    struct Answer: Encodable {
        var open: [View]
        var recent: [View]
    }

    static func respond(_ query: [String: String], book: IncidentBook, head: Bool) -> [UInt8] {
        guard let limit = query["limit"].map({ Int($0) }) ?? defaultLimit, (1...maxLimit).contains(limit) else {
            return httpResponse(status: 400, body: "limit must be 1...\(maxLimit)\n", head: head)
        }
        let (open, recent) = book.list(tenant: query["tenant"], limit: limit)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(Answer(open: open.map(View.init), recent: recent.map(View.init))) else {
            return httpResponse(status: 500, body: "cannot encode incidents\n", head: head)
        }
        return httpResponse(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n", head: head)
    }
}
