"""The deployment files agree with the code: .env.example lists every setting the code reads,
docker-compose.yml runs the right commands with known settings and health checks, the image
builds from the lock file as a non-root user, and the lock pins what pyproject.toml allows."""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import brotli
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# Code the deployed processes run (tests, testkit and bench set their own variables).
CODE = ("config", "lib", "moderation", "labelers")
# Set by the program itself, not by an operator.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}
ENV_METHODS = {"bool", "int", "float", "str", "list", "db", "db_url", "cache", "url", "json"}


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def variables_read_by_the_code() -> set[str]:
    """Names read through django-environ (env("X"), env.int("X"), "X" in env.ENVIRON) or
    os.environ / os.getenv, found in the source with ast."""
    found: set[str] = set()
    files = [path for package in CODE for path in (ROOT / package).rglob("*.py")]
    for path in files:
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args and (name := _string(node.args[0])):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "env":
                    found.add(name)
                elif isinstance(func, ast.Attribute):
                    target = ast.unparse(func.value)
                    by_environ = (target, func.attr) in {("os.environ", "get"), ("os", "getenv")}
                    if by_environ or (target == "env" and func.attr in ENV_METHODS):
                        found.add(name)
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                if name := _string(node.slice):
                    found.add(name)
            elif (
                isinstance(node, ast.Compare)
                and (name := _string(node.left))
                and ast.unparse(node.comparators[0]) in {"env.ENVIRON", "os.environ"}
            ):
                found.add(name)
    return found - NOT_SETTINGS


def variables_in_env_example() -> set[str]:
    """NAME=value lines, commented out or not."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_the_scanner_finds_what_the_settings_read():
    found = variables_read_by_the_code()
    # One of each way the code reads a variable.
    assert {"DATABASE_URL", "SECRET_KEY", "DEBUG", "LABEL_LEASE_SECONDS"} <= found
    assert "WORKER_WEDGED_SECONDS" in found  # os.environ.get in config/celery.py


def test_env_example_lists_every_setting_the_code_reads_and_no_other():
    in_code, in_example = variables_read_by_the_code(), variables_in_env_example()
    assert in_code - in_example == set(), "read by the code, missing from .env.example"
    assert in_example - in_code == set(), "in .env.example, read by nothing"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_sets_only_variables_the_settings_read():
    in_code = variables_read_by_the_code()
    for name, service in compose()["services"].items():
        if service.get("image") != "modqueue:latest":
            continue
        unknown = set(service.get("environment", {})) - in_code
        assert unknown == set(), f"{name} sets variables nothing reads"
        env = service["environment"]
        for required in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS"):
            assert required in env, (name, required)
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY has no default"


def test_compose_runs_web_worker_beat_and_migrations_with_their_commands():
    services = compose()["services"]
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi"]
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "config", "worker"]
    assert "--beat" not in worker, "beat runs once, in its own service"
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_every_long_running_compose_service_has_a_health_check():
    services = compose()["services"]
    for name in ("web", "worker", "beat", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["beat"]["healthcheck"]["test"][-3:] == ["readyz", "--check", "dispatcher"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_file_where_the_client_has_compose():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker client here has no compose plugin")
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_installs_from_the_lock_collects_static_and_runs_as_non_root():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    text = "\n".join(lines)
    assert "--require-hashes" in text and "requirements/base.txt" in text
    assert "collectstatic --noinput" in text
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] != "USER root"
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in lines)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", ".env"} <= set(ignored)


def test_collectstatic_works_with_the_image_build_settings(tmp_path):
    """The Dockerfile's build step, run here: throwaway settings, nothing left in data."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": "collectstatic-only",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'build' / 'db.sqlite3'}",
        "DATA_DIR": str(tmp_path / "build"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    static = tmp_path / "static"
    assert (static / "app.css").exists()
    assert (static / "admin").is_dir()
    # Hashed names, gzipped beside them, and the manifest that maps plain names to them.
    manifest = json.loads((static / "staticfiles.json").read_text())["paths"]
    hashed_css = manifest["app.css"]
    assert re.fullmatch(r"app\.[0-9a-f]{12}\.css", hashed_css), hashed_css
    assert (static / hashed_css).read_bytes() == (static / "app.css").read_bytes()
    assert (
        gzip.decompress((static / f"{hashed_css}.gz").read_bytes())
        == (static / hashed_css).read_bytes()
    )
    assert (
        brotli.decompress((static / f"{hashed_css}.br").read_bytes())
        == (static / hashed_css).read_bytes()
    )
    assert re.fullmatch(r"app\.[0-9a-f]{12}\.js", manifest["app.js"])

    # The image's processes link pages to the hashed names; a process with no collected
    # files (development, tests) links to the plain ones and still works.
    base = (ROOT / "templates" / "base.html").read_text()
    assert "{% static 'app.css' %}" in base and "{% static 'app.js' %}" in base
    page = (
        "import django; django.setup()\n"
        "from django.template import engines\n"
        "template = \"{% load static %}{% static 'app.css' %} {% static 'app.js' %}\"\n"
        "links = engines['django'].from_string(template).render()\n"
        "from django.test import Client\n"
        "gzip = {'accept-encoding': 'gzip'}\n"
        "served = Client().get(links.split()[0], secure=True, headers=gzip)\n"
        "print(served.status_code, served.get('Content-Encoding'), served.get('Cache-Control'))\n"
        "print(links)\n"
    )

    def links(static_root: Path) -> str:
        run = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", page],
            cwd=ROOT,
            env={
                **env,
                "STATIC_ROOT": str(static_root),
                "DJANGO_SETTINGS_MODULE": "config.settings",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip().splitlines()[-2:]

    # WhiteNoise serves the hashed name gzipped and cached for good; the plain one from the
    # app's folder (no collectstatic), cached briefly.
    served, linked = links(static)
    assert linked == f"/static/{hashed_css} /static/{manifest['app.js']}"
    assert served.startswith("200 gzip ") and "immutable" in served, served
    served, linked = links(tmp_path / "not-collected")
    assert linked == "/static/app.css /static/app.js"
    assert served.startswith("200 None ") and "immutable" not in served, served


def locked(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\\\]+)", path.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def pyproject_requirements() -> tuple[list[Requirement], list[Requirement], list[Requirement]]:
    text = (ROOT / "pyproject.toml").read_text()
    project = tomllib.loads(text)["project"]
    base = [Requirement(r) for r in project["dependencies"]]
    extras = project["optional-dependencies"]
    test = [Requirement(r) for r in extras["test"]]
    s3 = [Requirement(r) for r in extras["s3"]]
    return base, test, s3


def test_the_lock_files_pin_every_dependency_within_pyprojects_ranges_with_hashes():
    base, test, s3 = pyproject_requirements()
    for lock, requirements in (
        ("base.txt", base),
        ("s3.txt", base + s3),
        ("dev.txt", base + test + s3),
    ):
        path = ROOT / "requirements" / lock
        pins = locked(path)
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock}: {name} not pinned; run python3 dev.py lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (lock, name)
        lines = path.read_text().splitlines()
        unhashed = [
            line
            for line, following in zip(lines, lines[1:] + [""], strict=True)
            if re.match(r"^[A-Za-z0-9]", line) and "--hash=sha256:" not in following
        ]
        assert unhashed == [], lock
    base_pins, s3_pins, dev_pins = (
        locked(ROOT / "requirements" / name) for name in ("base.txt", "s3.txt", "dev.txt")
    )
    assert {n: v for n, v in dev_pins.items() if n in base_pins} == base_pins
    assert {n: v for n, v in s3_pins.items() if n in base_pins} == base_pins
    assert {n: v for n, v in dev_pins.items() if n in s3_pins} == s3_pins


def test_boto3_is_installed_only_with_the_s3_extra():
    """boto3 and botocore are ~34 MB that a deployment with local media never uses."""
    base_pins = locked(ROOT / "requirements" / "base.txt")
    assert not {"boto3", "botocore", "s3transfer"} & set(base_pins)
    assert {"boto3", "botocore"} <= set(locked(ROOT / "requirements" / "s3.txt"))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG WITH_S3=false" in dockerfile and "requirements/s3.txt" in dockerfile


def test_compose_builds_the_image_with_s3_only_when_asked():
    """boto3 is in the image only with WITH_S3=true (the Dockerfile's build argument)."""
    build = compose()["x-app"]["build"]
    assert build["context"] == "."
    assert build["args"]["WITH_S3"] == "${WITH_S3:-false}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG WITH_S3=false" in dockerfile and "requirements/s3.txt" in dockerfile
