"""Published statistics tables: numbers, header vocabulary, identities, row totals, prose."""
