// swift-tools-version: 6.1
// Times ProtoWire/MilvusCatalog decoding and the audit writer, and counts their heap allocations. Run (from the
// repository root):
//   swift run -c release --package-path Benchmarks DecodeBenchmark
//   swift run -c release --package-path Benchmarks AuditBenchmark [calls] [in-flight]
// A plain release executable instead of ordo-one/benchmark: it builds in seconds, and a malloc interposer
// (CMallocCounter, like ordo-one's MallocInterposer trait) counts every allocation the decoders make.
import PackageDescription

let package = Package(
    name: "Benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "milvus-guard", path: "..")
    ],
    targets: [
        .target(name: "CMallocCounter"),
        .executableTarget(
            name: "DecodeBenchmark",
            dependencies: ["CMallocCounter", .product(name: "MilvusCatalog", package: "milvus-guard")]
        ),
        .executableTarget(
            name: "AuditBenchmark",
            dependencies: ["CMallocCounter", .product(name: "AuditStore", package: "milvus-guard")]
        ),
    ]
)
