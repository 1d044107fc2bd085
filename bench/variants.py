"""The product's settings plus candidate changes named in BENCH_VARIANTS (comma-separated), so
that a bench can measure a settings change before anyone makes it in config/settings.py.

    server-side-binding   psycopg binds parameters on the server and prepares statements run
                          5+ times per connection (Django's OPTIONS["server_side_binding"])
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

VARIANTS = {v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v}
KNOWN = {"server-side-binding"}
if VARIANTS - KNOWN:
    raise ValueError(f"unknown BENCH_VARIANTS {sorted(VARIANTS - KNOWN)}; known: {sorted(KNOWN)}")
if "server-side-binding" in VARIANTS:
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
