"""`manage.py check --deploy` with a production environment: no warnings at all."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What docker-compose.yml and .env.example give a production process (the database is
    not reached by the checks, so any PostgreSQL URL does)."""
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "DATABASE_URL": "postgres://modqueue:modqueue@127.0.0.1:5432/modqueue",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "moderation.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://moderation.example.com",
            "DATA_DIR": str(tmp_path),
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_gives_no_warnings_with_the_production_environment(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_deploy_warns_when_debug_is_on_in_production(tmp_path):
    result = manage(production_env(tmp_path, DEBUG="true"), "check", "--deploy")
    assert "security.W018" in result.stderr + result.stdout
