"""Task tests reuse the skills tests' helpers (synthetic views, wizard-mode set-ups)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "skills"))
