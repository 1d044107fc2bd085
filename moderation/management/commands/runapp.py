"""One command for the embedded default: web server, Celery worker and beat together."""

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from labelers.services import labeler_default
from moderation.models import Source
from moderation.services import source_create


class Command(BaseCommand):
    help = "Migrate, make a first admin and a demo source, then run web + worker + beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=8, help="labeling threads")

    def handle(self, *args, host, port, web_workers, concurrency, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._first_run()
        env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}
        python = sys.executable
        commands = {
            "worker": [python, "-m", "celery", "-A", "config", "worker", "--beat",
                       "--pool", "threads", "--concurrency", str(concurrency),
                       "--loglevel", "INFO"],
            "web": [python, "-m", "gunicorn", "config.wsgi", "--bind", f"{host}:{port}",
                    "--workers", str(web_workers), "--access-logfile", "-"],
        }  # fmt: skip
        children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(f"Moderation queue running at http://{host}:{port}/"))
        if not settings.ZENTROPI_API_KEY:
            self.stdout.write(
                "No ZENTROPI_API_KEY: labels wait until you set it and restart (see README)."
            )
        stop = {"now": False}

        def _stop(*_):
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        restarts: list[float] = []
        try:
            while not stop["now"]:
                time.sleep(0.5)
                for name, child in children.items():
                    if child.poll() is None or stop["now"]:
                        continue
                    # Supervise: a crashed worker or web server comes back; pending work is
                    # in the database, so nothing is lost meanwhile. Give up if it keeps dying.
                    restarts = [t for t in restarts if time.monotonic() - t < 60] + [
                        time.monotonic()
                    ]
                    if len(restarts) > 5:
                        raise CommandError(f"{name} keeps exiting (code {child.returncode})")
                    self.stderr.write(f"{name} exited with {child.returncode}; restarting it")
                    children[name] = subprocess.Popen(commands[name], env=env)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _first_run(self):
        labeler_default()
        Group.objects.get_or_create(name="reviewer")
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            admin = User.objects.create_superuser("admin", "", password)
            admin.groups.add(Group.objects.get(name="reviewer"))
            self._remember(f"admin user: admin\nadmin password: {password}\n")
        if not Source.objects.exists():
            _, secret, token = source_create(name="Demo", slug="demo")
            self._remember(
                f"demo source: /webhooks/demo/\ndemo signing secret: {secret}\n"
                f"demo API token: {token}\n"
            )

    def _remember(self, text: str) -> None:
        # Secrets go to a file only its owner can read, never to the terminal or a log.
        path = settings.DATA_DIR / "first-run-credentials.txt"
        with open(path, "a") as handle:
            handle.write(text)
        path.chmod(0o600)
        self.stdout.write(self.style.WARNING(f"First run: credentials written to {path}"))
