// Public: `Date` and `Data` appear in the strategies' custom closures.
#if canImport(FoundationEssentials)
    public import FoundationEssentials
#elseif canImport(Foundation)
    public import Foundation
#endif

// How ChannelMessageEncoder and ChannelMessageDecoder write and read `Date` and `Data` (public: the
// custom strategies take closures over them).

// MARK: - Strategies

extension ChannelMessageEncoder {
    /// How ``ChannelMessageEncoder`` writes `Date` values.
    ///
    /// Like `JSONEncoder.DateEncodingStrategy`, but a struct with static members, so that strategies can be added
    /// without breaking code that switches over them.
    ///
    /// ```swift
    /// var encoder = ChannelMessageEncoder()
    /// encoder.dateEncodingStrategy = .millisecondsSince1970
    /// try encoder.encode(["at": Date(timeIntervalSince1970: 1.5)])  // {'at': 1500}
    /// ```
    public struct DateEncodingStrategy: Sendable {
        enum Base: Sendable {
            case iso8601
            case secondsSince1970
            case millisecondsSince1970
            case deferredToDate
            case custom(@Sendable (Date, any Encoder) throws -> Void)
        }

        let base: Base

        private init(_ base: Base) { self.base = base }

        /// An ISO 8601 string in UTC, exactly as Django's `DjangoJSONEncoder` writes an aware `datetime`: the
        /// default.
        ///
        /// Milliseconds are written when the date has a sub-second part (rounded to the microsecond, then cut to
        /// the millisecond, as Django cuts `isoformat()`), and left out otherwise: `2026-12-01T19:33:57.123Z`,
        /// `2026-12-01T19:33:57Z`. Python reads it with `datetime.fromisoformat` (Python 3.11 and later; before,
        /// replace the `Z` with `+00:00`), JavaScript with `new Date(text)`. Dates outside years 1...9999, which
        /// Python's `datetime` cannot hold, fail to encode.
        ///
        /// ```swift
        /// try ChannelMessageEncoder().encode(Date(timeIntervalSince1970: 0.5))  // '1970-01-01T00:00:00.500Z'
        /// ```
        public static let iso8601 = DateEncodingStrategy(.iso8601)

        /// A float of seconds since 1970-01-01T00:00:00Z, like Python's `time.time()`.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .secondsSince1970)
        /// try encoder.encode(Date(timeIntervalSince1970: 1.5))  // 1.5; Python: datetime.fromtimestamp(t, timezone.utc)
        /// ```
        public static let secondsSince1970 = DateEncodingStrategy(.secondsSince1970)

        /// An integer number of milliseconds since 1970-01-01T00:00:00Z, rounded to the nearest, as JavaScript's
        /// `Date.now()` and Java's `System.currentTimeMillis()` write it.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .millisecondsSince1970)
        /// try encoder.encode(Date(timeIntervalSince1970: 1.5))  // 1500
        /// ```
        public static let millisecondsSince1970 = DateEncodingStrategy(.millisecondsSince1970)

        /// `Date`'s own `Codable` form: a float of seconds since 2001-01-01, which only Swift understands. It is
        /// what this encoder wrote before it had strategies.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .deferredToDate)
        /// try encoder.encode(Date(timeIntervalSinceReferenceDate: 1))  // 1.0
        /// ```
        public static let deferredToDate = DateEncodingStrategy(.deferredToDate)

        /// Encodes each date with `body`, which writes to the encoder it is given.
        ///
        /// If `body` writes nothing, the date becomes an empty map, as with `JSONEncoder`.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .custom { date, encoder in
        ///     var container = encoder.singleValueContainer()
        ///     try container.encode(Int64(date.timeIntervalSince1970.rounded(.down)))  // whole Unix seconds
        /// })
        /// ```
        ///
        /// - Parameter body: Writes `date` to the encoder; errors it throws become ``ChannelLayerError/Code/encodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ date: Date, _ encoder: any Encoder) throws -> Void) -> DateEncodingStrategy {
            DateEncodingStrategy(.custom(body))
        }
    }

    /// How ``ChannelMessageEncoder`` writes `Data` values (`[UInt8]` is always ``ChannelMessage/binary(_:)``).
    ///
    /// ```swift
    /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .base64)
    /// try encoder.encode(["key": Data([0xde, 0xad])])  // {'key': '3q0='}
    /// ```
    public struct DataEncodingStrategy: Sendable {
        enum Base: Sendable {
            case binary
            case base64
            case custom(@Sendable (Data, any Encoder) throws -> Void)
        }

        let base: Base

        private init(_ base: Base) { self.base = base }

        /// ``ChannelMessage/binary(_:)``: msgpack `bin`, which a Python peer receives as `bytes`. The default.
        ///
        /// ```swift
        /// try ChannelMessageEncoder().encode(Data([0xde, 0xad]))  // b'\xde\xad'
        /// ```
        public static let binary = DataEncodingStrategy(.binary)

        /// A standard base64 string (`base64.b64decode` in Python), for messages that must also travel as JSON,
        /// which has no bytes.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .base64)
        /// try encoder.encode(Data([0xde, 0xad]))  // '3q0='
        /// ```
        public static let base64 = DataEncodingStrategy(.base64)

        /// Encodes each `Data` with `body`, which writes to the encoder it is given.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .custom { data, encoder in
        ///     var container = encoder.singleValueContainer()
        ///     try container.encode(data.map { String($0, radix: 16) }.joined())
        /// })
        /// ```
        ///
        /// - Parameter body: Writes `data` to the encoder; errors it throws become ``ChannelLayerError/Code/encodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ data: Data, _ encoder: any Encoder) throws -> Void) -> DataEncodingStrategy {
            DataEncodingStrategy(.custom(body))
        }
    }
}

extension ChannelMessageDecoder {
    /// How ``ChannelMessageDecoder`` reads `Date` values.
    ///
    /// Like `JSONDecoder.DateDecodingStrategy`, but a struct with static members, so that strategies can be added
    /// without breaking code that switches over them. A value of the wrong kind, or a malformed one, throws
    /// ``ChannelLayerError/Code/decodingFailed`` naming its coding path.
    ///
    /// ```swift
    /// var decoder = ChannelMessageDecoder()
    /// decoder.dateDecodingStrategy = .iso8601  // strings only
    /// let date = try decoder.decode(Date.self, from: "2026-12-01T20:33:57.123+01:00")
    /// ```
    public struct DateDecodingStrategy: Sendable {
        enum Base: Sendable {
            case iso8601OrSecondsSince1970
            case iso8601
            case secondsSince1970
            case millisecondsSince1970
            case deferredToDate
            case custom(@Sendable (any Decoder) throws -> Date)
        }

        let base: Base

        private init(_ base: Base) { self.base = base }

        /// A string as ``iso8601`` reads it, or a number as ``secondsSince1970`` reads it: the default, which
        /// takes both `datetime.isoformat()` (or Django's JSON form) and `time.time()` from a Python peer.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder()
        /// try decoder.decode(Date.self, from: "2026-12-01T19:33:57.123Z")
        /// try decoder.decode(Date.self, from: 1_796_153_637.123)  // the same instant
        /// ```
        public static let iso8601OrSecondsSince1970 = DateDecodingStrategy(.iso8601OrSecondsSince1970)

        /// An ISO 8601 / RFC 3339 string with a UTC offset.
        ///
        /// Takes what `datetime.isoformat()`, `str(datetime)`, Django and JavaScript's `toISOString()` write:
        /// `2026-12-01T19:33:57Z`, `2026-12-01 20:33:57.123456+01:00`, `2026-12-01T11:33:57-0800`. The fraction may
        /// have any number of digits (nanoseconds are kept), the offset is `Z` or `±HH:MM` (also `±HHMM`,
        /// `±HH:MM:SS`). A string without an offset (a naive `datetime`) is rejected, since it names no instant;
        /// so are out-of-range fields such as `2023-02-29` or a leap second `:60`, which Python rejects too.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .iso8601)
        /// try decoder.decode(Date.self, from: "2026-12-01T19:33:57.123456+00:00")
        /// ```
        public static let iso8601 = DateDecodingStrategy(.iso8601)

        /// A number (integer or float) of seconds since 1970-01-01T00:00:00Z, like Python's `time.time()`.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .secondsSince1970)
        /// try decoder.decode(Date.self, from: 1.5)
        /// ```
        public static let secondsSince1970 = DateDecodingStrategy(.secondsSince1970)

        /// A number (integer or float) of milliseconds since 1970-01-01T00:00:00Z, like JavaScript's `Date.now()`.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .millisecondsSince1970)
        /// try decoder.decode(Date.self, from: 1500)  // 1.5 s after 1970
        /// ```
        public static let millisecondsSince1970 = DateDecodingStrategy(.millisecondsSince1970)

        /// `Date`'s own `Codable` form: a number of seconds since 2001-01-01, which is what this library's encoder
        /// wrote before it had strategies.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .deferredToDate)
        /// try decoder.decode(Date.self, from: 1.0)  // 2001-01-01T00:00:01Z
        /// ```
        public static let deferredToDate = DateDecodingStrategy(.deferredToDate)

        /// Decodes each date with `body`, which reads from the decoder it is given.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .custom { decoder in
        ///     let days = try decoder.singleValueContainer().decode(Int.self)  // days since 1970
        ///     return Date(timeIntervalSince1970: Double(days) * 86_400)
        /// })
        /// ```
        ///
        /// - Parameter body: Reads a date from the decoder; errors it throws become ``ChannelLayerError/Code/decodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ decoder: any Decoder) throws -> Date) -> DateDecodingStrategy {
            DateDecodingStrategy(.custom(body))
        }
    }

    /// How ``ChannelMessageDecoder`` reads `Data` values (`[UInt8]` always reads ``ChannelMessage/binary(_:)``).
    ///
    /// ```swift
    /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .base64)
    /// try decoder.decode(Data.self, from: "3q0=")  // 2 bytes
    /// ```
    public struct DataDecodingStrategy: Sendable {
        enum Base: Sendable {
            case binary
            case base64
            case custom(@Sendable (any Decoder) throws -> Data)
        }

        let base: Base

        private init(_ base: Base) { self.base = base }

        /// ``ChannelMessage/binary(_:)`` (Python `bytes`), or leniently an array of integers 0...255, the shape
        /// `Data`'s own `Codable` writes. The default.
        ///
        /// ```swift
        /// try ChannelMessageDecoder().decode(Data.self, from: .binary([0xde, 0xad]))
        /// ```
        public static let binary = DataDecodingStrategy(.binary)

        /// A standard base64 string, or leniently ``ChannelMessage/binary(_:)``.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .base64)
        /// try decoder.decode(Data.self, from: "3q0=")
        /// ```
        public static let base64 = DataDecodingStrategy(.base64)

        /// Decodes each `Data` with `body`, which reads from the decoder it is given.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .custom { decoder in
        ///     Data(try decoder.singleValueContainer().decode(String.self).utf8)
        /// })
        /// ```
        ///
        /// - Parameter body: Reads a `Data` from the decoder; errors it throws become ``ChannelLayerError/Code/decodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ decoder: any Decoder) throws -> Data) -> DataDecodingStrategy {
            DataDecodingStrategy(.custom(body))
        }
    }
}

/// The strategies every container of one ``ChannelMessageEncoder/encode(_:)`` call carries.
