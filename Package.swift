// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "milvus-guard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "milvus-guard", targets: ["milvus-guard"]),
        // For the FuzzTesting/ and Benchmarks/ sub-packages, which depend on this package by path.
        .library(name: "MilvusCatalog", targets: ["ProtoWire", "MilvusCatalog"]),
        .library(name: "AuditStore", targets: ["AuditStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C libraries and Linux system calls.
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CLinux"),

        // One Swift wrapper per C library; unsafe code lives only here.
        .target(name: "NGHTTP2Support", dependencies: ["CNGHTTP2"], swiftSettings: swiftSettings),
        .target(name: "OpenSSLSupport", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(name: "SQLiteSupport", dependencies: ["CSQLite"], swiftSettings: swiftSettings),
        .target(name: "ZlibSupport", dependencies: ["CZlib"], swiftSettings: swiftSettings),

        // Protocol knowledge: protobuf wire format and the Milvus RPC catalog.
        .target(name: "ProtoWire", swiftSettings: swiftSettings),
        .target(name: "MilvusCatalog", dependencies: ["ProtoWire"], swiftSettings: swiftSettings),

        // The policy: rules that return decisions, loaded from policies/.
        .target(
            name: "GuardPolicy",
            dependencies: ["MilvusCatalog", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),

        // Services behind protocols: the audit log (SQLite, and in memory for tests).
        .target(name: "AuditStore", dependencies: ["CLinux", "SQLiteSupport", "OpenSSLSupport"], swiftSettings: swiftSettings),

        // The proxy.
        .target(
            name: "ProxyCore",
            dependencies: [
                "CLinux", "NGHTTP2Support", "OpenSSLSupport", "ZlibSupport", "ProtoWire", "MilvusCatalog",
                "GuardPolicy", "AuditStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GuardCLI",
            dependencies: [
                "CLinux", "ProxyCore", "OpenSSLSupport", "MilvusCatalog", "GuardPolicy", "AuditStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "milvus-guard",
            dependencies: ["GuardCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),

        // Tests: one target per module.
        .testTarget(
            name: "ProtoWireTests",
            dependencies: ["ProtoWire", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MilvusCatalogTests",
            dependencies: [
                "MilvusCatalog", "ProtoWire", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GuardPolicyTests",
            dependencies: [
                "GuardPolicy", "MilvusCatalog", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "NGHTTP2SupportTests", dependencies: ["NGHTTP2Support"], swiftSettings: swiftSettings),
        .testTarget(name: "OpenSSLSupportTests", dependencies: ["OpenSSLSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AuditStoreTests",
            dependencies: ["AuditStore", "SQLiteSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SQLiteSupportTests", dependencies: ["SQLiteSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ZlibSupportTests", dependencies: ["ZlibSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ProxyCoreTests",
            dependencies: [
                "ProxyCore", "NGHTTP2Support", "CLinux", "ZlibSupport", "GuardPolicy", "OpenSSLSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GuardCLITests",
            dependencies: [
                "GuardCLI", "ProxyCore", "AuditStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
