"""`python -m palaestra.cli`: the `palaestra` command (as torchrun and accelerate launch start it)."""

from palaestra.cli import main

main()
