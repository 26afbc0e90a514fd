"""Pydantic records: what comes in, what goes out, and the snapshot the API serves."""
