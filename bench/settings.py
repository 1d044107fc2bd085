"""Settings for the intake benchmark: the product's own settings plus a /baseline/ route.

Run gunicorn with DJANGO_SETTINGS_MODULE=bench.settings so that the product's webhook and the
baseline view are served by the same workers, with the same middleware and database settings.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
