"""Command-line tools, run on a workstation: not deployed with the Function (see .funcignore)."""
