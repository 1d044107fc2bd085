import os

from celery import Celery

from config import broker  # noqa: F401 - registers the atomic filesystem transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
