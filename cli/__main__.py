from cli.entry import run

raise SystemExit(run())
