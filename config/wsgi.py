"""WSGI entry point for gunicorn."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What is loaded by now (Django, the apps, their modules and caches) lives as long as the
# worker: moved out of the garbage collector's sight, a full collection no longer walks it.
# A page that builds many small objects (the quality page's histograms) triggers one every
# few requests, and each walked every object of the process (~100 ms; bench/admin_pages.py).
gc.freeze()
