"""The actors' code and image; it also serves the Agent API in its ``agent`` mode."""

# Other services served from this package's code (see maestromotif.kit.server._service_modules).
EXTRA_SERVICES = ("agent",)
