"""`python -m signet.mobile`: the `signet-mobile` command."""

from signet.mobile.cli import main

main(prog_name="signet-mobile")
