/// A first-in, first-out queue with a bound; appending and taking the first are O(1)
/// (amortised).
///
/// Why not an `Array` and `removeFirst`: that moves every element behind the first. The live
/// detector's trainer queue holds up to one key per node (`--max-nodes`, a million by
/// default); a fleet due at once, 100,000 keys taken one by one, moved about 5·10⁹ elements,
/// inside the lock the reactor submits through (issue #17). Taking advances a head index
/// instead, clears the taken slot (so a taken element is released at once), and the storage
/// is compacted when the head has passed half of it.
///
/// A value type with no synchronisation of its own: the owner serialises access.
public struct BoundedFIFO<Element> {
    public let capacity: Int
    private var items: [Element?] = []
    private var head = 0

    /// A queue of at most `capacity` elements (at least 1).
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public var count: Int { items.count - head }
    public var isEmpty: Bool { head == items.count }

    /// Appends `element` at the end; false, appending nothing, when `capacity` are queued.
    @discardableResult
    public mutating func append(_ element: Element) -> Bool {
        guard count < capacity else { return false }
        items.append(element)
        return true
    }

    /// Takes the first element, nil when empty.
    public mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            // The elements left are at most as many as the slots given back: O(1) amortised.
            items.removeFirst(head)
            head = 0
        }
        return element
    }
}
