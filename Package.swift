// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "channels-redis-swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChannelsRedis", targets: ["ChannelsRedis"]),
        .executable(name: "chat", targets: ["Chat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // `swift package generate-documentation` (the DocC catalog in Sources/ChannelsRedis/Documentation.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev", "libevent-dev", "libssl-dev"])]
        ),
        // Our glue between hiredis contexts and libevent (instead of hiredis's stock adapter).
        // TLS (rediss://) is ours too, with OpenSSL 3 (Debian's libssl-dev): Sources/CHiredisIO/tls.c.
        .target(
            name: "CHiredisIO",
            dependencies: ["CHiredis"],
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        .target(
            name: "ChannelsRedis",
            dependencies: [
                "CHiredis",
                "CHiredisIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Chat",
            dependencies: [
                "ChannelsRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/Chat",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "channels-redis-bench",
            dependencies: [
                "ChannelsRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Sources/ChannelsRedisBenchmark",
            swiftSettings: swiftSettings
        ),
        // The C ceiling the benchmark compares against: hiredis async + libevent, no Swift.
        .executableTarget(
            name: "hiredis-baseline",
            path: "Sources/HiredisBaseline",
            linkerSettings: [.linkedLibrary("hiredis"), .linkedLibrary("event_core")]
        ),
        // What both test targets use, and nothing else does: child processes, the driver of the Python peers (the scripts
        // in Tests/Python), the fixtures' error and lock. Declarations are `package`, not `public`.
        .target(
            name: "ChannelsRedisTestSupport",
            path: "Tests/Support",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ChannelsRedisTests",
            dependencies: [
                "ChannelsRedis", "CHiredis", "CHiredisIO", "ChannelsRedisTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ChannelsRedis", "ChannelsRedisTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
