"""One module per ``python -m engine`` subcommand."""
