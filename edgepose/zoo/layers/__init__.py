"""Layers shared by zoo architectures, one small module per kind of layer."""
