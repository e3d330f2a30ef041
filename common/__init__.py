"""Small helpers shared by every app: money, locking, API errors."""
