"""Shared utilities both apps and the wiring use (cache, logs, metrics, the broker's
transport and queue depth, security headers, logins, health probes); imports no app."""
