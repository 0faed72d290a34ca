// swift-tools-version:5.4
// libFuzzer targets for the Swift decoders of bytes that come off the network: msgpack and JSON
// (MessageDecoding) and Fernet decryption (FernetDecryption). The RESP scanner's target is plain C
// (RESPScanner/, built by clang alone). Build and run them all with `bash .ci/fuzz` (Linux: the
// swift.org toolchain ships libFuzzer).
//
// A package of its own, depending on the library by path, rather than targets of the root
// package: a fuzzer must be built with -sanitize=fuzzer (which links libFuzzer's main) and
// -parse-as-library, flags the library's own `swift build` must never see, and this way the root
// manifest, its build and its resolved dependencies stay exactly as they are. (Compiling the
// needed sources directly with swiftc would mean building swift-crypto and swift-collections by
// hand.) .ci/fuzz builds it in release with
//     --sanitize=address -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -enable-testing
//     -Xswiftc -use-ld=lld
// (-enable-testing because Fernet is internal: FernetFuzzer uses `@testable import`).
//
// Tools version 5.4 on purpose, as swift-protobuf's FuzzTesting package stays below 5.5: from 5.5
// on, SwiftPM renames an executable's entry point to `<Module>_main` (so tests can link it) and
// links `main` to that symbol, which a fuzzer does not have (its main is libFuzzer's): the link
// fails with "undefined symbol 'MessageDecodingFuzzer_main'". Hence also Swift 5 language mode and
// no `platforms:` (the library's macOS 15 cannot be named before tools 6.0; this runs on Linux).

import PackageDescription

let package = Package(
    name: "channels-redis-fuzz",
    dependencies: [
        .package(name: "channels-redis-swift", path: "../.."),
        // The library's own requirement; here for HMAC and SHA-256 in FernetFuzzer.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "MessageDecodingFuzzer",
            dependencies: [.product(name: "ChannelsRedis", package: "channels-redis-swift")],
            path: "MessageDecoding"
        ),
        .executableTarget(
            name: "FernetFuzzer",
            dependencies: [
                .product(name: "ChannelsRedis", package: "channels-redis-swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "FernetDecryption"
        ),
    ]
)
