// swift-tools-version: 6.1
// libFuzzer harness for ProtoWire and MilvusCatalog. Build and run with scripts/fuzz [seconds].
import PackageDescription

let package = Package(
    name: "FuzzTesting",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "milvus-guard", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "FuzzCatalog",
            dependencies: [.product(name: "MilvusCatalog", package: "milvus-guard")]
        )
    ]
)
