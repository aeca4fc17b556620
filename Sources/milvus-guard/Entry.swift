import ArgumentParser
import GuardCLI

/// The process entry point: ArgumentParser's `main()` parses the arguments and runs the subcommand.
@main
extension GuardCommand {}
