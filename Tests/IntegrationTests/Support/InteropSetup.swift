import Testing

// How both sides of an interop test are configured: the arguments of InteropTests' parameterized tests.

/// One way to configure both sides identically (or, for keys, deliberately not).
struct InteropSetup: Sendable, CustomTestStringConvertible {
    var name: String
    var servers = 1
    var json = false
    var swiftKeys: [String] = []
    var pythonKeys: [String] = []
    var prefix = "asgi"

    var carriesBinary: Bool { !json }
    var testDescription: String { name }

    static let msgpack = InteropSetup(name: "msgpack")
    static let json = InteropSetup(name: "json", json: true)
    static let msgpackEncrypted = InteropSetup(name: "msgpack, encrypted", swiftKeys: ["interop-key"], pythonKeys: ["interop-key"])
    static let jsonEncrypted = InteropSetup(name: "json, encrypted", json: true, swiftKeys: ["interop-key"], pythonKeys: ["interop-key"])
    static let sharded = InteropSetup(name: "msgpack, three hosts", servers: 3)
    static let everything = InteropSetup(
        name: "json, encrypted, three hosts",
        servers: 3,
        json: true,
        swiftKeys: ["clé-🔑", "old"],
        pythonKeys: ["clé-🔑", "old"]
    )

    static let all: [InteropSetup] = [.msgpack, .json, .msgpackEncrypted, .jsonEncrypted, .sharded, .everything]
}

/// Keys on each side during a rotation. The first key encrypts, any key decrypts, so a side reads the other exactly when
/// its list contains the other's first key. The usual rollout: everyone on `[old]`; then `[old, new]` everywhere (still
/// writing old, already reading new); then `[new, old]`; finally `[new]`.
struct InteropRotation: Sendable, CustomTestStringConvertible {
    var pythonKeys: [String]
    var swiftKeys: [String]

    var swiftReadsPython: Bool { swiftKeys.contains(pythonKeys[0]) }
    var pythonReadsSwift: Bool { pythonKeys.contains(swiftKeys[0]) }
    var testDescription: String { "python \(pythonKeys), swift \(swiftKeys)" }

    static let old = "old-secret"
    static let new = "nouvelle-clé-🔑"

    static let all: [InteropRotation] = [
        // Mid-rotation, both read each other through their second key.
        InteropRotation(pythonKeys: [new, old], swiftKeys: [old, new]),
        InteropRotation(pythonKeys: [old, new], swiftKeys: [new, old]),
        // Python rotated first; a Swift process still on [old] cannot read it, but Python still reads Swift.
        InteropRotation(pythonKeys: [new, old], swiftKeys: [old]),
        // Swift rotated first; Python still on [old] cannot read Swift, Swift reads Python.
        InteropRotation(pythonKeys: [old], swiftKeys: [new, old]),
        // Rotation done on one side only, old key dropped: neither reads the other.
        InteropRotation(pythonKeys: [new], swiftKeys: [old]),
    ]
}
