import Foundation
import OrderedCollections
import Testing

@testable import ChannelsRedis

private struct User: Codable, Equatable {
    var name: String
    var age: Int
    var nickname: String?
    var tags: [String]
}

private struct ChatEvent: Codable, Equatable {
    enum Kind: String, Codable {
        case message, join
    }

    var type: String
    var kind: Kind
    var user: User
    var friends: [User]
    var avatar: [UInt8]
    var payload: Data
    var score: Double
    var ratio: Float
    var small: Int8
    var big: UInt64
    var flags: [String: Bool]
    var extra: ChannelMessage
}

private struct Everything: Codable, Equatable {
    var int: Int = -1
    var int8: Int8 = -8
    var int16: Int16 = -16
    var int32: Int32 = -32
    var int64: Int64 = .min
    var uint: UInt = 1
    var uint8: UInt8 = 8
    var uint16: UInt16 = 16
    var uint32: UInt32 = 32
    var uint64: UInt64 = .max
    var float: Float = 1.5
    var double: Double = -0.25
    var bool = true
    var string = "s"
    var optionalPresent: Int? = 4
    var optionalAbsent: Int?
    var nested: [[Int]] = [[1], [], [2, 3]]
    var optionals: [Int?] = [1, nil, 3]
}

/// Custom coding: an unkeyed top level, single values, nested containers and explicit nil.
private struct Point: Codable, Equatable {
    var x: Double
    var y: Double
    var label: String?

    init(x: Double, y: Double, label: String?) {
        self.x = x
        self.y = y
        self.label = label
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        x = try container.decode(Double.self)
        y = try container.decode(Double.self)
        let meta = try container.nestedContainer(keyedBy: MetaKeys.self)
        label = try meta.decodeIfPresent(String.self, forKey: .label)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(x)
        try container.encode(y)
        var meta = container.nestedContainer(keyedBy: MetaKeys.self)
        if let label {
            try meta.encode(label, forKey: .label)
        } else {
            try meta.encodeNil(forKey: .label)
        }
    }

    enum MetaKeys: String, CodingKey {
        case label
    }
}

private struct Celsius: Codable, Equatable {
    var degrees: Double

    init(degrees: Double) { self.degrees = degrees }
    init(from decoder: any Decoder) throws { degrees = try decoder.singleValueContainer().decode(Double.self) }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(degrees)
    }
}

private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

private final class Dog: Animal {
    var breed: String

    init(name: String, breed: String) {
        self.breed = breed
        super.init(name: name)
    }

    private enum Keys: String, CodingKey { case breed }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        breed = try container.decode(String.self, forKey: .breed)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(breed, forKey: .breed)
        try super.encode(to: container.superEncoder())
    }
}

private struct Wrapper<T> {
    var user: T
}

extension Wrapper: Encodable where T: Encodable {}
extension Wrapper: Decodable where T: Decodable {}

private struct Team: Codable {
    var users: [User]
}

private struct Silent: Encodable {
    func encode(to encoder: any Encoder) throws {}
}

private struct Huge: Encodable {
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Int128(UInt64.max) + 1)
    }
}

private struct Failing: Encodable {
    struct Boom: Error {}
    func encode(to encoder: any Encoder) throws { throw Boom() }
}

@Suite("ChannelMessage Codable")
struct ChannelMessageCodableTests {
    fileprivate static let ada = User(name: "Ada", age: 36, nickname: nil, tags: ["math"])

    @Test func structEncodesAsMapInPropertyOrder() throws {
        let message = try ChannelMessage(encoding: User(name: "Ada", age: 36, nickname: "countess", tags: ["a", "b"]))
        #expect(message == ["name": "Ada", "age": 36, "nickname": "countess", "tags": ["a", "b"]])
        #expect(message.mapValue.map { Array($0.keys) } == ["name", "age", "nickname", "tags"])
        // The bytes are what Python would send for the same dict.
        #expect(
            try MessagePackSerializer().serialize(message)
                == MessagePackSerializer().serialize(
                    ["name": "Ada", "age": 36, "nickname": "countess", "tags": ["a", "b"]]
                )
        )
    }

    @Test func nilOptionalsAreOmitted() throws {
        let message = try ChannelMessage(encoding: Self.ada)
        #expect(message["nickname"] == nil)
        #expect(message.mapValue?.count == 3)
    }

    @Test func optionalsDecodeFromMissingOrNil() throws {
        #expect(try ChannelMessage.map(["name": "Ada", "age": 36, "tags": ["math"]]).decode(as: User.self) == Self.ada)
        #expect(try ChannelMessage.map(["name": "Ada", "age": 36, "nickname": nil, "tags": ["math"]]).decode() == Self.ada)
    }

    @Test func nestedTypesRoundTrip() throws {
        let event = ChatEvent(
            type: "chat.message",
            kind: .join,
            user: Self.ada,
            friends: [Self.ada, User(name: "Bob", age: 1, nickname: "b", tags: [])],
            avatar: [0, 1, 255],
            payload: Data([9, 8]),
            score: 0.5,
            ratio: 0.25,
            small: -100,
            big: .max,
            flags: ["admin": false],
            extra: ["anything": [1, "x", nil]]
        )
        let message = try ChannelMessage(encoding: event)
        #expect(message["kind"] == "join")
        #expect(message["avatar"] == .binary([0, 1, 255]))
        #expect(message["payload"] == .binary([9, 8]))
        #expect(message["big"] == .uint(.max))
        #expect(message["small"] == -100)
        #expect(message["extra"] == ["anything": [1, "x", nil]])
        #expect(message["friends"]?[1]?["nickname"] == "b")
        #expect(try message.decode(as: ChatEvent.self) == event)
        // And through the wire formats.
        let bytes = try MessagePackSerializer().serialize(message)
        let back = try bytes.withUnsafeBytes { try MessagePackSerializer().deserialize($0) }
        #expect(try back.decode(as: ChatEvent.self) == event)
    }

    @Test func everyPrimitiveRoundTrips() throws {
        let value = Everything()
        let message = try ChannelMessage(encoding: value)
        #expect(message["optionalAbsent"] == nil)
        #expect(message["optionals"] == [1, nil, 3])
        #expect(message["float"] == .double(1.5))
        #expect(message["uint64"] == .uint(.max))
        #expect(try message.decode(as: Everything.self) == value)
    }

    @Test func customContainersRoundTrip() throws {
        let point = Point(x: 1, y: 2.5, label: nil)
        let message = try ChannelMessage(encoding: point)
        #expect(message == [.double(1), .double(2.5), ["label": nil]])
        #expect(try message.decode(as: Point.self) == point)
        let labelled = Point(x: -1, y: 0, label: "origin-ish")
        #expect(try ChannelMessage(encoding: labelled).decode(as: Point.self) == labelled)
        #expect(try ChannelMessage(encoding: Celsius(degrees: 21.5)) == .double(21.5))
        #expect(try ChannelMessage.double(21.5).decode(as: Celsius.self) == Celsius(degrees: 21.5))
    }

    @Test func superEncoderAndDecoder() throws {
        let message = try ChannelMessage(encoding: Dog(name: "Rex", breed: "collie"))
        #expect(message == ["breed": "collie", "super": ["name": "Rex"]])
        let dog = try message.decode(as: Dog.self)
        #expect(dog.name == "Rex")
        #expect(dog.breed == "collie")
    }

    @Test func topLevelValues() throws {
        #expect(try ChannelMessage(encoding: 5) == 5)
        #expect(try ChannelMessage(encoding: "s") == "s")
        #expect(try ChannelMessage(encoding: [1, 2]) == [1, 2])
        #expect(try ChannelMessage(encoding: ["b": 1, "a": 2]) == ["b": 1, "a": 2])
        #expect(try ChannelMessage(encoding: Optional<Int>.none) == .nil)
        #expect(try ChannelMessage(encoding: [UInt8]([1, 2])) == .binary([1, 2]))
        #expect(try ChannelMessage.nil.decode(as: Int?.self) == nil)
        #expect(try ChannelMessage.int(3).decode(as: Int?.self) == 3)
        #expect(try ChannelMessage.map(["k": 1]).decode(as: [String: Int].self) == ["k": 1])
    }

    @Test func emptyArraysStayArraysAndEmptyBytesStayBinary() throws {
        struct Lists: Codable, Equatable {
            var names: [String] = []
            var raw: [UInt8] = []
            var nested: [[UInt8]] = [[]]
        }
        let message = try ChannelMessage(encoding: Lists())
        #expect(message == ["names": [], "raw": .binary([]), "nested": [.binary([])]])
        #expect(try message.decode(as: Lists.self) == Lists())
    }

    @Test func lenientNumbers() throws {
        // Python senders write 1 where Swift expects a Double, and sometimes 3.0 where Swift expects an Int.
        #expect(try ChannelMessage.int(1).decode(as: Double.self) == 1)
        #expect(try ChannelMessage.uint(.max).decode(as: Float.self) == Float(UInt64.max))
        #expect(try ChannelMessage.double(3).decode(as: Int.self) == 3)
        #expect(try ChannelMessage.array([1, 2]).decode(as: [UInt8].self) == [1, 2])
        #expect(try ChannelMessage.binary([1, 2]).decode(as: Data.self) == Data([1, 2]))
    }

    @Test func channelMessageIsCodableWithOtherCoders() throws {
        let message: ChannelMessage = ["type": "x", "n": 1, "xs": [true, nil, 2.5, "s"], "m": ["k": -7]]
        let json = try JSONEncoder().encode(message)
        let back = try JSONDecoder().decode(ChannelMessage.self, from: json)
        #expect(back == message)
    }

    // MARK: Errors

    @Test func typeMismatchNamesTheKeyPath() throws {
        let message: ChannelMessage = ["user": ["name": "Ada", "age": "old", "tags": []]]
        let error = #expect(throws: ChannelLayerError.self) { try message.decode(as: Wrapper<User>.self) }
        #expect(error?.code == .decodingFailed)
        #expect(error?.message == "type mismatch at 'user.age': expected Int, found string")
        #expect(error?.underlying is DecodingError)
    }

    @Test func missingKeyNamesTheKeyPath() {
        let message: ChannelMessage = ["user": ["age": 3, "tags": []]]
        let error = #expect(throws: ChannelLayerError.self) { try message.decode(as: Wrapper<User>.self) }
        #expect(error?.code == .decodingFailed)
        #expect(error?.message.hasPrefix("missing key at 'user.name'") == true, "\(error?.message ?? "")")
    }

    @Test func arrayIndexAppearsInThePath() {
        let message: ChannelMessage = ["users": [["name": "A", "age": 1, "tags": []], ["name": "B", "age": nil, "tags": []]]]
        let error = #expect(throws: ChannelLayerError.self) { try message.decode(as: Team.self) }
        #expect(error?.message == "missing value at 'users[1].age': expected Int, found nil")
    }

    @Test func outOfRangeIntegerIsReported() {
        let error = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["user": 300]).decode(as: Wrapper<UInt8>.self) }
        #expect(error?.message == "invalid value at 'user': 300 does not fit in UInt8")
        let fraction = #expect(throws: ChannelLayerError.self) { try ChannelMessage.double(2.5).decode(as: Int.self) }
        #expect(fraction?.message == "invalid value at '<root>': 2.5 does not fit in Int")
    }

    @Test func wrongContainerIsReported() {
        let error = #expect(throws: ChannelLayerError.self) { try ChannelMessage("text").decode(as: User.self) }
        #expect(error?.message == "type mismatch at '<root>': expected map, found string")
        let array = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["tags": 1]).decode(as: [String: [Int]].self) }
        #expect(array?.message == "type mismatch at 'tags': expected array, found int")
        let short = #expect(throws: ChannelLayerError.self) { try ChannelMessage.array([1.0]).decode(as: Point.self) }
        #expect(short?.message.hasPrefix("missing value at '[1]'") == true, "\(short?.message ?? "")")
    }

    @Test func encodingErrors() {
        let silent = #expect(throws: ChannelLayerError.self) { try ChannelMessage(encoding: Silent()) }
        #expect(silent?.code == .encodingFailed)
        #expect(silent?.message.contains("did not encode any values") == true)
        let huge = #expect(throws: ChannelLayerError.self) { try ChannelMessage(encoding: Wrapper(user: Huge())) }
        #expect(huge?.message.hasPrefix("invalid value at 'user': 18446744073709551616 does not fit in 64 bits") == true, "\(huge?.message ?? "")")
        #expect(huge?.underlying is EncodingError)
        let failing = #expect(throws: ChannelLayerError.self) { try ChannelMessage(encoding: Failing()) }
        #expect(failing?.code == .encodingFailed)
        #expect(failing?.underlying is Failing.Boom)
    }
}

// MARK: - Dates and Data

private struct Stamped: Codable, Equatable {
    var type = "chat.message"
    var sent: Date
    var edited: Date?
    var payload: Data
}

private struct At: Codable {
    var at: Date
}

private struct Timeline: Codable {
    var at: [Date]
}

private struct Blob: Codable, Equatable {
    var data: Data
}

@Suite("ChannelMessage Codable dates and data")
struct ChannelMessageCodableDateTests {
    /// 2026-12-01T19:33:57Z.
    static let unix: Int64 = 1_796_153_637

    /// The instant `unix` seconds plus `nanos` nanoseconds after 1970, computed the way the parser does.
    static func instant(_ unix: Int64, nanos: Int64 = 0) -> Date {
        Date(timeIntervalSinceReferenceDate: Double(unix - 978_307_200) + Double(nanos) / 1_000_000_000)
    }

    static func iso(_ date: Date) throws -> String? {
        try ChannelMessageEncoder().encode(date).stringValue
    }

    static func date(_ message: ChannelMessage, _ strategy: ChannelMessageDecoder.DateDecodingStrategy = .iso8601OrSecondsSince1970) throws -> Date {
        try ChannelMessageDecoder(dateDecodingStrategy: strategy).decode(Date.self, from: message)
    }

    // MARK: Encoding

    @Test func defaultEncodingIsWhatDjangoWrites() throws {
        #expect(try Self.iso(Date(timeIntervalSince1970: 1_796_153_637.123)) == "2026-12-01T19:33:57.123Z")
        // isoformat() leaves out zero microseconds, and Django keeps `.000` when there are some.
        #expect(try Self.iso(Self.instant(Self.unix)) == "2026-12-01T19:33:57Z")
        #expect(try Self.iso(Date(timeIntervalSince1970: 0.0005)) == "1970-01-01T00:00:00.000Z")
        // Microseconds are rounded (as datetime.fromtimestamp does), then cut to milliseconds (as Django does).
        #expect(try Self.iso(Date(timeIntervalSince1970: 0.123_999)) == "1970-01-01T00:00:00.123Z")
        #expect(try Self.iso(Date(timeIntervalSince1970: 0.999_999_6)) == "1970-01-01T00:00:01Z")
        #expect(try Self.iso(Date(timeIntervalSince1970: 0.000_000_4)) == "1970-01-01T00:00:00Z")
        #expect(try Self.iso(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(try Self.iso(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    }

    @Test(arguments: [
        (Int64(-62_135_596_800), "0001-01-01T00:00:00Z"),
        (-12_219_292_800, "1582-10-15T00:00:00Z"),
        (-11_670_998_400, "1600-02-29T00:00:00Z"),
        (-2_203_891_201, "1900-02-28T23:59:59Z"),
        (-2_203_891_200, "1900-03-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (946_684_799, "1999-12-31T23:59:59Z"),
        (946_684_800, "2000-01-01T00:00:00Z"),
        (951_825_600, "2000-02-29T12:00:00Z"),
        (1_709_251_199, "2024-02-29T23:59:59Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ])
    func edgeDatesEncodeAndDecode(unix: Int64, text: String) throws {
        #expect(try Self.iso(Self.instant(unix)) == text)
        #expect(try Self.date(.string(text)) == Self.instant(unix))
    }

    @Test func civilCalendarMatchesDayArithmeticOverTheWholeRange() {
        // Every 7th day from 0001-01-01 to 9999-12-31, plus each day's successor: dates and day numbers agree.
        var day = ISO8601Timestamp.days(fromYear: 1, month: 1, day: 1)
        let last = ISO8601Timestamp.days(fromYear: 9999, month: 12, day: 31)
        var failures = 0
        while day <= last, failures < 5 {
            let (year, month, dayOfMonth) = ISO8601Timestamp.civil(fromDays: day)
            if ISO8601Timestamp.days(fromYear: year, month: month, day: dayOfMonth) != day
                || !(1...ISO8601Timestamp.daysIn(month: month, year: year)).contains(dayOfMonth)
            {
                failures += 1
                Issue.record("day \(day) became \(year)-\(month)-\(dayOfMonth)")
            }
            day += 7
        }
        #expect(ISO8601Timestamp.days(fromYear: 1970, month: 1, day: 1) == 0)
        #expect(last - ISO8601Timestamp.days(fromYear: 1, month: 1, day: 1) + 1 == 3_652_059)  // Python: date.max.toordinal()
    }

    @Test func structWithDateIsTheMessagePythonWouldBuild() throws {
        let stamped = Stamped(sent: Date(timeIntervalSince1970: 1_796_153_637.5), edited: nil, payload: Data([0, 0xFF]))
        let message = try ChannelMessage(encoding: stamped)
        let expected: ChannelMessage = ["type": "chat.message", "sent": "2026-12-01T19:33:57.500Z", "payload": .binary([0, 0xFF])]
        #expect(message == expected)
        #expect(try MessagePackSerializer().serialize(message) == MessagePackSerializer().serialize(expected))
        #expect(try message.decode(as: Stamped.self) == stamped)
    }

    @Test func datesInCollectionsUseTheStrategy() throws {
        let dates = [Self.instant(0), Self.instant(Self.unix, nanos: 250_000_000)]
        #expect(try ChannelMessage(encoding: dates) == ["1970-01-01T00:00:00Z", "2026-12-01T19:33:57.250Z"])
        #expect(try ChannelMessage(encoding: ["a": dates[1]]) == ["a": "2026-12-01T19:33:57.250Z"])
        #expect(try ChannelMessage(encoding: [dates[0]]).decode(as: [Date].self) == [dates[0]])
        #expect(try ChannelMessage.map(["a": "1970-01-01T00:00:00Z"]).decode(as: [String: Date].self) == ["a": dates[0]])
        #expect(try ChannelMessage.map(["at": ["1970-01-01T00:00:00Z", 0]]).decode(as: Timeline.self).at == [dates[0], dates[0]])
    }

    @Test func roundTripsKeepTheMillisecond() throws {
        var random = SplitMix64(state: 2026)
        for _ in 0..<2_000 {
            // Anywhere in years 1...9999, with a random sub-second part.
            let seconds = Double(Int64(random.next() % 315_537_897_600) - 62_135_596_800) + Double(random.next() % 1_000_000) / 1e6
            let date = Date(timeIntervalSince1970: seconds)
            let text = try #require(try Self.iso(date))
            let back = try Self.date(.string(text))
            let difference = date.timeIntervalSince(back)
            // Cut to the millisecond, so never ahead; at most a millisecond behind (plus Double's resolution there).
            #expect(difference > -1e-4 && difference < 1e-3 + 1e-4, "\(seconds) → \(text) → \(back.timeIntervalSince1970)")
            // And what was written at millisecond precision reads back to the same text, except that `.000` (which
            // Django writes for 1...999 microseconds) reads back as a whole second, which Django writes without it.
            let again = try Self.iso(back)
            #expect(again == text || (text.hasSuffix(".000Z") && again == text.dropLast(5) + "Z"), "\(text) read back as \(again ?? "nil")")
        }
        let exact = Self.instant(Self.unix, nanos: 123_000_000)
        #expect(try ChannelMessage(encoding: exact).decode(as: Date.self) == exact)
    }

    @Test func datesPythonCannotHoldDoNotEncode() {
        for date in [Self.instant(253_402_300_800), Self.instant(-62_135_596_801), Date.distantFuture.addingTimeInterval(1e12)] {
            let error = #expect(throws: ChannelLayerError.self) { try ChannelMessage(encoding: At(at: date)) }
            #expect(error?.code == .encodingFailed)
            #expect(error?.message.hasPrefix("invalid value at 'at': ") == true, "\(error?.message ?? "")")
            #expect(error?.message.hasSuffix("is outside years 1...9999, which Python's datetime holds") == true)
        }
        let nan = #expect(throws: ChannelLayerError.self) { try ChannelMessage(encoding: Date(timeIntervalSinceReferenceDate: .nan)) }
        #expect(nan?.code == .encodingFailed)
    }

    @Test func otherEncodingStrategies() throws {
        let date = Date(timeIntervalSince1970: 1_796_153_637.123)
        let seconds = ChannelMessageEncoder(dateEncodingStrategy: .secondsSince1970)
        #expect(try seconds.encode(date) == .double(date.timeIntervalSince1970))
        #expect(try seconds.encode(Date(timeIntervalSince1970: 1.5)) == .double(1.5))

        let milliseconds = ChannelMessageEncoder(dateEncodingStrategy: .millisecondsSince1970)
        #expect(try milliseconds.encode(date) == .int(1_796_153_637_123))
        #expect(try milliseconds.encode(Date(timeIntervalSince1970: -1.5)) == .int(-1500))
        #expect(try milliseconds.encode(Date(timeIntervalSince1970: 0.000_6)) == .int(1))
        let infinite = #expect(throws: ChannelLayerError.self) { try milliseconds.encode(At(at: Date(timeIntervalSinceReferenceDate: .infinity))) }
        #expect(infinite?.code == .encodingFailed)
        #expect(infinite?.message.hasPrefix("invalid value at 'at': ") == true)

        let deferred = ChannelMessageEncoder(dateEncodingStrategy: .deferredToDate)
        #expect(try deferred.encode(date) == .double(date.timeIntervalSinceReferenceDate))
        #expect(try ChannelMessageDecoder(dateDecodingStrategy: .deferredToDate).decode(Date.self, from: deferred.encode(date)) == date)

        let custom = ChannelMessageEncoder(
            dateEncodingStrategy: .custom { date, encoder in
                var container = encoder.singleValueContainer()
                try container.encode(Int64(date.timeIntervalSince1970.rounded(.down)))
            }
        )
        #expect(try custom.encode(At(at: date)) == ["at": .int(Self.unix)])
        let silent = ChannelMessageEncoder(dateEncodingStrategy: .custom { _, _ in })
        #expect(try silent.encode(At(at: date)) == ["at": [:]])
        struct Refused: Error {}
        let failing = ChannelMessageEncoder(dateEncodingStrategy: .custom { _, _ in throw Refused() })
        let error = #expect(throws: ChannelLayerError.self) { try failing.encode(At(at: date)) }
        #expect(error?.code == .encodingFailed)
        #expect(error?.underlying is Refused)
    }

    // MARK: Decoding

    @Test(arguments: [
        ("2026-12-01T19:33:57Z", Int64(0)),
        ("2026-12-01T19:33:57.1Z", 100_000_000),
        ("2026-12-01T19:33:57.123Z", 123_000_000),
        ("2026-12-01T19:33:57.123456Z", 123_456_000),
        ("2026-12-01T19:33:57.123456789Z", 123_456_789),
        ("2026-12-01T19:33:57.123456789999Z", 123_456_789),  // Digits past nanoseconds are dropped, as Python drops them.
        ("2026-12-01T19:33:57.000Z", 0),
        ("2026-12-01T19:33:57,5Z", 500_000_000),
    ])
    func fractionalDigits(text: String, nanos: Int64) throws {
        let date = try Self.date(.string(text))
        #expect(abs(date.timeIntervalSince(Self.instant(Self.unix, nanos: nanos))) < 2.5e-7, "\(text) → \(date.timeIntervalSince1970)")
        #expect(date == Self.instant(Self.unix, nanos: nanos))
    }

    @Test(arguments: [
        "2026-12-01T19:33:57.123Z",
        "2026-12-01T19:33:57.123z",
        "2026-12-01T19:33:57.123+00:00",
        "2026-12-01T19:33:57.123-00:00",
        "2026-12-01T20:33:57.123+01:00",
        "2026-12-01T20:33:57.123+0100",
        "2026-12-01T20:33:57.123+01",
        "2026-12-01T20:33:57.123+01:00:00",
        "2026-12-01T14:03:57.123-05:30",
        "2026-12-02T05:03:57.123+09:30",
        "2026-12-01T11:33:57.123-08:00",
        "2026-12-02T19:32:57.123+23:59",
        "2026-12-01 19:33:57.123+00:00",  // str(datetime)
        "2026-12-01t19:33:57.123Z",
    ])
    func offsetsNameTheSameInstant(text: String) throws {
        #expect(try Self.date(.string(text)) == Self.instant(Self.unix, nanos: 123_000_000), "\(text)")
    }

    @Test func offsetsCrossDayMonthAndYearBoundaries() throws {
        #expect(try Self.date("2000-01-01T00:30:00+01:00") == Self.instant(946_684_800 - 1800))
        #expect(try Self.date("2024-02-29T23:30:00-01:00") == Self.instant(1_709_251_199 + 1 + 1800))  // 2024-03-01T00:30Z
        #expect(try Self.date("0001-01-01T00:00:00+00:01") == Self.instant(-62_135_596_800 - 60))  // before year 1 in UTC
        #expect(try Self.date("1969-12-31T19:00:00-05:00") == Self.instant(0))
    }

    @Test func numbersAreUnixSeconds() throws {
        #expect(try Self.date(.int(Self.unix)) == Self.instant(Self.unix))
        #expect(try Self.date(.int(-1)) == Self.instant(-1))
        #expect(try Self.date(.uint(UInt64(Int64.max) + 1)) == Date(timeIntervalSince1970: 9.223_372_036_854_775_808e18))
        // What time.time() returns: the float is kept exactly.
        let now = 1_796_153_637.123_456_7
        #expect(try Self.date(.double(now)).timeIntervalSince1970 == now)
        #expect(try Self.date(.double(now), .secondsSince1970).timeIntervalSince1970 == now)
        #expect(try Self.date(.double(-0.25)) == Date(timeIntervalSince1970: -0.25))
    }

    @Test func otherDecodingStrategies() throws {
        #expect(try Self.date(.int(1_796_153_637_123), .millisecondsSince1970) == Self.instant(Self.unix, nanos: 123_000_000))
        #expect(try Self.date(.double(1500.5), .millisecondsSince1970) == Date(timeIntervalSince1970: 1.5005))
        #expect(try Self.date(.int(.min), .millisecondsSince1970) == Date(timeIntervalSince1970: Double(Int64.min) / 1000))
        #expect(try Self.date(.double(1), .deferredToDate) == Date(timeIntervalSinceReferenceDate: 1))
        #expect(try Self.date("2026-12-01T19:33:57Z", .iso8601) == Self.instant(Self.unix))
        let days = ChannelMessageDecoder.DateDecodingStrategy.custom { decoder in
            Date(timeIntervalSince1970: Double(try decoder.singleValueContainer().decode(Int.self)) * 86_400)
        }
        #expect(try Self.date(2, days) == Self.instant(172_800))
        let error = #expect(throws: ChannelLayerError.self) {
            try ChannelMessageDecoder(dateDecodingStrategy: days).decode(At.self, from: ["at": "x"])
        }
        #expect(error?.message == "type mismatch at 'at': expected Int, found string")
    }

    @Test func strategiesRejectTheOtherForm() {
        let cases: [(ChannelMessage, ChannelMessageDecoder.DateDecodingStrategy, String)] = [
            (1.5, .iso8601, "type mismatch at 'at': expected an ISO 8601 date string, found double"),
            ("2026-12-01T19:33:57Z", .secondsSince1970, "type mismatch at 'at': expected seconds since 1970, found string"),
            ("2026-12-01T19:33:57Z", .millisecondsSince1970, "type mismatch at 'at': expected milliseconds since 1970, found string"),
            (true, .iso8601OrSecondsSince1970, "type mismatch at 'at': expected an ISO 8601 date string or seconds since 1970, found bool"),
            (.binary([1]), .iso8601OrSecondsSince1970, "type mismatch at 'at': expected an ISO 8601 date string or seconds since 1970, found binary"),
            (["k": 1], .iso8601OrSecondsSince1970, "type mismatch at 'at': expected an ISO 8601 date string or seconds since 1970, found map"),
            (nil, .iso8601OrSecondsSince1970, "missing value at 'at': expected an ISO 8601 date string or seconds since 1970, found nil"),
            (.double(.nan), .iso8601OrSecondsSince1970, "invalid value at 'at': nan is not a number of seconds since 1970"),
            (.double(-.infinity), .secondsSince1970, "invalid value at 'at': -inf is not a number of seconds since 1970"),
            (.double(.infinity), .millisecondsSince1970, "invalid value at 'at': inf is not a number of milliseconds since 1970"),
        ]
        for (value, strategy, expected) in cases {
            let error = #expect(throws: ChannelLayerError.self) {
                try ChannelMessageDecoder(dateDecodingStrategy: strategy).decode(At.self, from: ["at": value])
            }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message == expected)
            #expect(error?.underlying is DecodingError)
        }
    }

    @Test(arguments: [
        ("2026-13-01T00:00:00Z", "month 13 is out of range 1...12"),
        ("2026-00-01T00:00:00Z", "month 0 is out of range 1...12"),
        ("2023-02-29T00:00:00Z", "day 29 is out of range 1...28 for 2023-02"),
        ("1900-02-29T00:00:00Z", "day 29 is out of range 1...28 for 1900-02"),
        ("2026-04-31T00:00:00Z", "day 31 is out of range 1...30 for 2026-04"),
        ("2026-12-00T00:00:00Z", "day 0 is out of range 1...31 for 2026-12"),
        ("0000-01-01T00:00:00Z", "year 0 is out of range 1...9999"),
        ("2026-12-01T24:00:00Z", "hour 24 is out of range 0...23"),
        ("2026-12-01T19:60:00Z", "minute 60 is out of range 0...59"),
        ("2016-12-31T23:59:60Z", "second 60 is out of range 0...59"),
        ("2026-12-01T19:33:57", "no UTC offset: a naive datetime names no instant; write Z or ±HH:MM"),
        ("2026-12-01T19:33:57.123456", "no UTC offset: a naive datetime names no instant; write Z or ±HH:MM"),
        ("2026-12-01", "no time of day"),
        ("2026-12-01T19:33:57.Z", "no digits after the decimal point"),
        ("2026-12-01T19:33:57+24:00", "UTC offset out of range (at most ±23:59:59)"),
        ("2026-12-01T19:33:57+05:60", "UTC offset out of range (at most ±23:59:59)"),
        ("2026-12-01T19:33:57+5:30", "malformed UTC offset"),
        ("2026-12-01T19:33:57+05:3", "malformed UTC offset"),
        ("2026-12-01T19:33:57Z ", "unexpected text after the UTC offset"),
        ("2026-12-01T19:33:57ZZ", "unexpected text after the UTC offset"),
        ("2026-12-01T19:33:57 Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("2026-12-01T19:33Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("26-12-01T19:33:57Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("2026/12/01T19:33:57Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("２026-12-01T19:33:57Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("yesterday", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
        ("", "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"),
    ])
    func malformedStringsNameThePathAndTheProblem(text: String, reason: String) {
        let error = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["at": [.string(text)]]).decode(as: Timeline.self) }
        #expect(error?.code == .decodingFailed)
        #expect(error?.message == "invalid value at 'at[0]': '\(text)' is not an ISO 8601 date: \(reason)")
        guard case .dataCorrupted(let context)? = error?.underlying as? DecodingError else {
            Issue.record("underlying is \(String(describing: error?.underlying))")
            return
        }
        #expect(context.underlyingError is ISO8601Timestamp.Invalid)
    }

    @Test func longMalformedStringsAreShortenedInTheMessage() {
        let text = "2026-12-01T19:33:57.123Z" + String(repeating: "x", count: 100)
        let error = #expect(throws: ChannelLayerError.self) { try ChannelMessage.string(text).decode(as: Date.self) }
        #expect(error?.message == "invalid value at '<root>': '\(text.prefix(64))…' is not an ISO 8601 date: unexpected text after the UTC offset")
    }

    // MARK: Data

    @Test func dataIsBinaryByDefault() throws {
        #expect(try ChannelMessage(encoding: Blob(data: Data([0xDE, 0xAD]))) == ["data": .binary([0xDE, 0xAD])])
        #expect(try ChannelMessage(encoding: Data()) == .binary([]))
        #expect(try ChannelMessage(encoding: [Data([1]), Data()]) == [.binary([1]), .binary([])])
        #expect(try ChannelMessage.map(["data": .binary([1, 2])]).decode(as: Blob.self) == Blob(data: Data([1, 2])))
        // Leniently, the list of byte values that Data's own Codable writes.
        #expect(try ChannelMessage.map(["data": [1, 255]]).decode(as: Blob.self) == Blob(data: Data([1, 255])))
        #expect(try ChannelMessage.binary([]).decode(as: Data.self) == Data())
    }

    @Test func dataOfTheWrongKindIsReported() {
        let string = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["data": "3q0="]).decode(as: Blob.self) }
        #expect(string?.code == .decodingFailed)
        #expect(string?.message == "type mismatch at 'data': expected binary, found string")
        let big = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["data": [1, 256]]).decode(as: Blob.self) }
        #expect(big?.message == "invalid value at 'data[1]': 256 does not fit in UInt8")
        let missing = #expect(throws: ChannelLayerError.self) { try ChannelMessage.map(["data": nil]).decode(as: Blob.self) }
        #expect(missing?.message == "missing value at 'data': expected binary, found nil")
    }

    @Test func base64DataStrategy() throws {
        let encoder = ChannelMessageEncoder(dataEncodingStrategy: .base64)
        #expect(try encoder.encode(Blob(data: Data([0xDE, 0xAD]))) == ["data": "3q0="])
        #expect(try encoder.encode(Data()) == "")
        // [UInt8] is not Data: it stays binary.
        #expect(try encoder.encode([UInt8]([1])) == .binary([1]))
        // So the message has a JSON form.
        #expect(try JSONSerializer().serialize(encoder.encode(Blob(data: Data([0xDE, 0xAD])))) == Array(#"{"data": "3q0="}"#.utf8))

        let decoder = ChannelMessageDecoder(dataDecodingStrategy: .base64)
        #expect(try decoder.decode(Blob.self, from: ["data": "3q0="]) == Blob(data: Data([0xDE, 0xAD])))
        #expect(try decoder.decode(Blob.self, from: ["data": .binary([7])]) == Blob(data: Data([7])))
        let invalid = #expect(throws: ChannelLayerError.self) { try decoder.decode(Blob.self, from: ["data": "not base64!"]) }
        #expect(invalid?.message == "invalid value at 'data': string is not valid base64")
        let number = #expect(throws: ChannelLayerError.self) { try decoder.decode(Blob.self, from: ["data": 1]) }
        #expect(number?.message == "type mismatch at 'data': expected a base64 string, found int")
    }

    @Test func customDataStrategies() throws {
        let encoder = ChannelMessageEncoder(
            dataEncodingStrategy: .custom { data, encoder in
                var container = encoder.singleValueContainer()
                try container.encode(data.count)
            }
        )
        #expect(try encoder.encode(Blob(data: Data([1, 2, 3]))) == ["data": 3])
        let decoder = ChannelMessageDecoder(
            dataDecodingStrategy: .custom { decoder in
                Data(try decoder.singleValueContainer().decode(String.self).utf8)
            }
        )
        #expect(try decoder.decode(Blob.self, from: ["data": "hi"]) == Blob(data: Data("hi".utf8)))
    }

    @Test func strategiesAreSettableProperties() throws {
        var encoder = ChannelMessageEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.dataEncodingStrategy = .base64
        let message = try encoder.encode(Stamped(sent: Self.instant(1), edited: Self.instant(2), payload: Data([0xFF])))
        #expect(message == ["type": "chat.message", "sent": 1000, "edited": 2000, "payload": "/w=="])
        var decoder = ChannelMessageDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        decoder.dataDecodingStrategy = .base64
        #expect(try decoder.decode(Stamped.self, from: message) == Stamped(sent: Self.instant(1), edited: Self.instant(2), payload: Data([0xFF])))
    }
}
