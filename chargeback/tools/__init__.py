"""Command-line tools that are not deployed with the Function (see .funcignore)."""
