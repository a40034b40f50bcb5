"""The JSON API for practice software, `/api/v1` (docs/api.md)."""
