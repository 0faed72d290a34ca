import ChannelsRedis
import ChannelsRedisTestSupport
import OrderedCollections
import Testing

// What the interop tests compare Swift's and Python's messages with: exactly, not by `==`.

/// Records an issue unless `actual` is exactly `expected`: same kinds, key order, string bytes, float bits, and integers
/// normalised (`.uint` only above `Int64.max`).
func expectExact(
    _ actual: ChannelMessage,
    _ expected: ChannelMessage,
    _ context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    if let difference = firstDifference(actual, expected, at: "message") {
        Issue.record("\(context): \(difference)", sourceLocation: sourceLocation)
    }
}

func firstDifference(_ actual: ChannelMessage, _ expected: ChannelMessage, at path: String) -> String? {
    switch (actual, expected) {
    case (.nil, .nil):
        return nil
    case (.bool(let a), .bool(let b)):
        return a == b ? nil : "\(path) is \(a), expected \(b)"
    case (.int, .int), (.int, .uint), (.uint, .int), (.uint, .uint):
        if case .uint(let value) = actual, value <= UInt64(Int64.max) {
            return "\(path) is .uint(\(value)), expected the normalised .int(\(value))"
        }
        return actual == expected ? nil : "\(path) is \(actual), expected \(expected)"
    case (.double(let a), .double(let b)):
        return a.bitPattern == b.bitPattern
            ? nil : "\(path) is \(a) (bits \(hex64(a.bitPattern))), expected \(b) (bits \(hex64(b.bitPattern)))"
    case (.string(let a), .string(let b)):
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        return x == y
            ? nil : "\(path): string of \(x.count) UTF-8 bytes, expected \(y.count); \(firstByteDifference(x, y)); got \(abbreviated(actual))"
    case (.binary(let a), .binary(let b)):
        return a == b ? nil : "\(path): \(a.count) bytes, expected \(b.count); \(firstByteDifference(a, b))"
    case (.array(let a), .array(let b)):
        guard a.count == b.count else { return "\(path): array of \(a.count) elements, expected \(b.count)" }
        for index in a.indices {
            if let difference = firstDifference(a[index], b[index], at: "\(path)[\(index)]") { return difference }
        }
        return nil
    case (.map(let a), .map(let b)):
        let (keys, expectedKeys) = (Array(a.keys), Array(b.keys))
        guard keys.map({ Array($0.utf8) }) == expectedKeys.map({ Array($0.utf8) }) else {
            if Set(keys) == Set(expectedKeys) && keys.count == expectedKeys.count {
                return "\(path): keys in another order: \(keys.prefix(20)), expected \(expectedKeys.prefix(20))"
            }
            return "\(path): keys \(keys.prefix(20)) (\(keys.count)), expected \(expectedKeys.prefix(20)) (\(expectedKeys.count))"
        }
        for (key, value) in a {
            if let difference = firstDifference(value, b[key]!, at: "\(path)[\"\(key)\"]") { return difference }
        }
        return nil
    default:
        return "\(path) is \(abbreviated(actual)), expected \(abbreviated(expected))"
    }
}

func hex64(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

func firstByteDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    let common = min(a.count, b.count)
    guard let index = (0..<common).first(where: { a[$0] != b[$0] }) ?? (a.count == b.count ? nil : common) else {
        return "identical bytes"
    }
    let around = max(0, index - 8)
    let mine = hexDump(Array(a[min(around, a.count)..<min(index + 8, a.count)]))
    let theirs = hexDump(Array(b[min(around, b.count)..<min(index + 8, b.count)]))
    return "first difference at byte \(index): \(mine) vs \(theirs)"
}
