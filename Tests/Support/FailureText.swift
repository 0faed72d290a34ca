// Short renderings of values for failure messages.

/// `bytes` as two-digit hex, space-separated: the first `limit` of them, then how many there are in all.
package func hexDump(_ bytes: [UInt8], limit: Int = 96) -> String {
    let shown = bytes.prefix(limit).map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
    return shown.joined(separator: " ") + (bytes.count > limit ? " … (\(bytes.count) bytes)" : "")
}

/// `value`'s description, cut after `limit` characters (then saying how long it was).
package func abbreviated(_ value: some CustomStringConvertible, limit: Int = 160) -> String {
    let text = value.description
    return text.count > limit ? String(text.prefix(limit)) + "… (\(text.count) characters)" : text
}
