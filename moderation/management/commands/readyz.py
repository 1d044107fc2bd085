"""The readiness checks of /readyz from a shell: for containers that serve no http (beat's
compose health check) and for operators. Exit status 0 when every check asked for is ok."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lib import health


class Command(BaseCommand):
    help = "Run the readiness checks (database, migrations, broker, dispatcher); exit 1 on failure."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="append",
            choices=list(settings.HEALTH_CHECKS),
            help="only this check (repeatable); default: all that /readyz runs",
        )

    def handle(self, *args, check=None, **options):
        ready, results = health.readiness(only=check)
        self.stdout.write(json.dumps(results))
        if not ready:
            raise CommandError("not ready")
