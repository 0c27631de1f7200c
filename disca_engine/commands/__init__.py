"""One module per ``disca-engine`` sub-command (argument parsing and dispatch only)."""
