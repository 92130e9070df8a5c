"""Command-line interface (placeholder until the commands land)."""

import click


@click.group()
def main() -> None:
    """Reconcile paper dossier registers with the electronic one-stop system."""
