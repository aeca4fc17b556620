import Foundation

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
