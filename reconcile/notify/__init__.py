"""`reconcile notify`: the citizens to tell what happened to their dossiers, as a CSV for an SMS gateway."""
