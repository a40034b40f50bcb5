"""Storage: the only place SQL lives."""
