"""Command handlers: one small function per CLI command, each calling one library function.

A handler takes the parsed arguments, calls the library, prints, and returns an exit code;
it may raise any `featurebank.errors` type, which `cli.main` maps to an exit code. Handlers
live in one module per area (definitions, runs, training, vacuum, catalog, deploy,
governance); `cli.COMMANDS` is the one table from command name to handler. Nothing here
imports `featurebank.cli` (the arrow points from the CLI down to its handlers), and each
handler imports the library lazily, so `featurebank validate` and `plan` never import Spark.
"""
