from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_describes_one_image_for_web_worker_and_beat_beside_postgres_and_redis():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    images = {services[name]["image"] for name in ("web", "worker", "beat", "migrate")}
    assert images == {"modqueue:latest"}
    env = services["worker"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    assert "celery" in services["worker"]["command"] and "beat" in services["beat"]["command"]
    assert (ROOT / "Dockerfile").exists()


def test_compose_workers_consume_the_labels_and_the_dispatch_queue():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["worker"]["command"]
    queues = command[command.index("-Q") + 1].split(",")
    assert {"labels", "dispatch"} <= set(queues)
