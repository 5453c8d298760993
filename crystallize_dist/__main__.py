"""``python -m crystallize_dist`` runs the CLI."""

from crystallize_dist.cli import main

main(prog_name="crystallize-dist")
