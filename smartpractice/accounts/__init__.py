"""Accounts: passwords, login, sessions, rate limits."""
