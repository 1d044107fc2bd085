"""First-run setup of the embedded default: migrate, a first admin, a demo source."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from labelers.criteria import labeler_default, source_setup
from moderation.models import Source


class Command(BaseCommand):
    help = (
        "Migrate, then make a first admin and a demo source if there are none (their "
        "credentials go to a file in DATA_DIR that only its owner can read)."
    )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        labeler_default()
        lines = []
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            admin = User.objects.create_superuser("admin", "", password)
            # The groups come from the migrations (moderation/roles.py).
            admin.groups.set(Group.objects.filter(name__in=["reviewer", "senior"]))
            lines.append(f"admin user: admin\nadmin password: {password}\n")
        if not Source.objects.exists():
            _, secret, token = source_setup(name="Demo", slug="demo")
            lines.append(
                f"demo source: /webhooks/demo/\ndemo signing secret: {secret}\n"
                f"demo API token: {token}\n"
            )
        if lines:
            self._remember("".join(lines))
        if not settings.ZENTROPI_API_KEY:
            self.stdout.write(
                "No ZENTROPI_API_KEY: labels wait until you set it and restart (see README). "
                "To try the workspace without a key: python3 dev.py run --demo"
            )

    def _remember(self, text: str) -> None:
        # Secrets go to a file only its owner can read, never to the terminal or a log.
        path = settings.DATA_DIR / "first-run-credentials.txt"
        with open(path, "a") as handle:
            handle.write(text)
        path.chmod(0o600)
        self.stdout.write(self.style.WARNING(f"First run: credentials written to {path}"))
