import Foundation
import GuardCLI
import Testing

/// A fresh folder under the system temp folder, removed when the value is released. Each test makes
/// its own, so tests can run in parallel.
final class TemporaryFolder {
    /// The folder's absolute path, without symlinks, as the config loader will report it.
    let path: String

    init() throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true).resolvingSymlinksInPath()
        let url = base.appendingPathComponent("guard-cli-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }

    /// Writes `text` to `name` (folders created as needed) and returns the file's absolute path.
    @discardableResult
    func write(_ name: String, _ text: String = "") throws -> String {
        let url = URL(fileURLWithPath: self.path, isDirectory: true).appendingPathComponent(name)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(),
            withIntermediateDirectories: true
        )
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// `name` inside the folder.
    func file(_ name: String) -> String { self.path + "/" + name }
}

extension TemporaryFolder {
    /// Writes `yaml` as guard.yaml here and loads it the way `serve --config guard.yaml` does.
    func loadConfig(_ yaml: String) throws -> GuardConfig {
        try self.write("guard.yaml", yaml)
        return try GuardConfig.load(configPath: "guard.yaml", currentDirectory: self.path)
    }

    /// The error loading `yaml` as guard.yaml gives, printed as the CLI prints it (nil, and a recorded issue,
    /// when it loads).
    func configFailure(_ yaml: String) throws -> String? {
        try self.write("guard.yaml", yaml)
        let error = #expect(throws: ConfigError.self) {
            try GuardConfig.load(configPath: "guard.yaml", currentDirectory: self.path)
        }
        return error?.description
    }
}
