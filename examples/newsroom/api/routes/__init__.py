"""Routes of the newsroom app."""
