"""Waking devices that are not connected: Web Push and UnifiedPush / ntfy notifications."""
