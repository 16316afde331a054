"""Ergast-schema data: where it lives, how it is read, validated and fetched."""
