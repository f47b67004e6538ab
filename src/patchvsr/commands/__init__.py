"""The `patchvsr` subcommands, one module each (`add_parser(subparsers)` + `run(args)`), listed in
`patchvsr.cli.SUBCOMMAND_MODULES`; options shared by `upscale` and `batch` are in `common`."""
