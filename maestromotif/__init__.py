"""MaestroMotif: skill design from AI feedback, as a deployable system.

The domain library: environment, skills, tasks, models, reward shaping, the
generated gRPC stubs (``maestromotif.v1``) and the service kit (``maestromotif.kit``).
Plain Python and torch; nothing here imports ``services``.
"""

__version__ = "0.1.0"
