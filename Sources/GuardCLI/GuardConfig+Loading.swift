import Foundation

extension GuardConfig {
    /// Finds and loads the configuration the way `serve` does: the file named by `--config` (which
    /// must exist), else `guard.yaml` in `currentDirectory` if there is one, else the defaults with
    /// paths relative to `currentDirectory`.
    ///
    /// - Parameters:
    ///   - configPath: the `--config` value as typed; relative paths are taken from `currentDirectory`.
    ///   - currentDirectory: the process's working folder (a parameter so tests can use a temp folder).
    /// - Throws: ``ConfigError``.
    public static func load(configPath: String?, currentDirectory: String) throws -> GuardConfig {
        if let configPath {
            return try Self.load(file: configPath, currentDirectory: currentDirectory)
        }
        let implicit = ConfigValue.resolve(Self.defaultFileName, relativeTo: currentDirectory)
        guard FileManager.default.fileExists(atPath: implicit) else {
            return Self.defaults(baseDirectory: ConfigValue.resolve(".", relativeTo: currentDirectory))
        }
        return try Self.load(file: Self.defaultFileName, currentDirectory: currentDirectory)
    }

    /// Reads and parses one config file; its relative paths are resolved against its own folder.
    ///
    /// - Parameters:
    ///   - path: the file as the user named it; messages show it this way.
    ///   - currentDirectory: what a relative `path` is relative to.
    /// - Throws: ``ConfigError``, with no line when the file itself can't be read.
    public static func load(file path: String, currentDirectory: String) throws -> GuardConfig {
        let absolute = ConfigValue.resolve(path, relativeTo: currentDirectory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw ConfigError(file: path, problem: "cannot read the config file: no such file")
        }
        guard !isDirectory.boolValue else {
            throw ConfigError(file: path, problem: "cannot read the config file: it is a directory")
        }
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw ConfigError(file: path, problem: "cannot read the config file: permission denied")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, problem: "cannot read the config file: it is not UTF-8 text")
        }
        let folder = URL(fileURLWithPath: absolute).deletingLastPathComponent().path
        var config = try Self.parse(yaml: text, fileName: path, baseDirectory: folder)
        config.sourcePath = absolute
        return config
    }

    /// Parses guard.yaml text. Keys left out take their defaults.
    ///
    /// - Parameters:
    ///   - yaml: the file's contents.
    ///   - fileName: how messages name the file (`guard.yaml:3: …`).
    ///   - baseDirectory: the absolute folder relative paths in the file are resolved against.
    /// - Throws: ``ConfigError`` with the line and dotted key of the first problem in the file.
    public static func parse(yaml: String, fileName: String, baseDirectory: String) throws -> GuardConfig {
        try ConfigParser(fileName: fileName, baseDirectory: baseDirectory).parse(yaml)
    }
}
