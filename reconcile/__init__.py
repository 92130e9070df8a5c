"""dossier-reconcile: reconcile paper dossier registers with the electronic one-stop system."""

__version__ = "0.1.0"
