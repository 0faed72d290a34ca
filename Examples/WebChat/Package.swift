// swift-tools-version:6.2
// The browser chat example: Hummingbird serves the Django Channels tutorial's chat page and WebSocket,
// and every socket is a consumer on a ChannelsRedis layer. Its own package so that the library's build
// stays free of the web framework (see STYLE.md, Layout).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "webchat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "webchat", targets: ["WebChat"])
    ],
    dependencies: [
        // The library, by path; named, because a path package is otherwise known by its folder's name (a clone may be in any folder).
        .package(name: "channels-redis-swift", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.2.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "WebChat",
            dependencies: [
                .product(name: "ChannelsRedis", package: "channels-redis-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        )
    ],
    swiftLanguageModes: [.v6]
)
