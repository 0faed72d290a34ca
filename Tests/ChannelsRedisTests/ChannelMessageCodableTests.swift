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
