"""Scale-out on one machine, as if on several hosts: two gunicorn instances, two Celery
worker processes and one beat on the same PostgreSQL and Redis, a burst of signed webhooks
spread over both web instances. Used by bench/scaleout.py (numbers) and by the end-to-end
test (assertions); the caller provides the database (its Django connection) and the broker
(CELERY_BROKER_URL)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.db.models import Count

from labelers.criteria import source_setup
from labelers.models import Label
from moderation.models import Item
from testkit.processes import (
    app_env,
    free_port,
    kill_group,
    run_in_threads,
    start_beat,
    start_web,
    start_worker,
    stop,
)
from testkit.signing import signed_headers


@dataclass
class Burst:
    items: int
    sent_seconds: float = 0.0
    drained_seconds: float = 0.0  # from the first webhook to the last label done
    statuses: Counter = field(default_factory=Counter)
    by_web: Counter = field(default_factory=Counter)
    by_worker: Counter = field(default_factory=Counter)  # labels done, by worker process
    api_calls: int = 0
    items_called_twice: int = 0
    labels_not_done: int = 0
    killed_at: float | None = None  # seconds after the first webhook
    recovered_seconds: float | None = None  # from the kill to the last label done

    @property
    def drain_rate(self) -> float:
        return self.items / self.drained_seconds if self.drained_seconds else 0.0


class ScaleOut:
    def __init__(
        self,
        *,
        folder: Path,
        api,
        concurrency: int = 8,
        web_workers: int = 2,
        **settings,
    ):
        self.folder, self.api = folder, api
        self.env = app_env(data_dir=folder, api_url=api.url, **settings)
        self.concurrency, self.web_workers = concurrency, web_workers
        self.webs: list = []
        self.web_urls: list[str] = []
        self.workers: list = []
        self.beat = None
        self.source, self.secret, _ = source_setup(
            name="Scale-out", slug=f"scale-{uuid.uuid4().hex[:6]}"
        )

    def __enter__(self) -> ScaleOut:
        try:
            for n in range(2):
                port = free_port()
                log = self.folder / f"web{n}.log"
                self.webs.append(start_web(self.env, port=port, workers=self.web_workers, log=log))
                self.web_urls.append(f"http://127.0.0.1:{port}")
            for n in range(2):
                log = self.folder / f"worker{n}.log"
                worker = start_worker(self.env, concurrency=self.concurrency, beat=False, log=log)
                self.workers.append(worker)
            self.beat = start_beat(self.env, folder=self.folder, log=self.folder / "beat.log")
            time.sleep(3)  # the workers connect and write their first heartbeats
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        stop(*self.webs, *self.workers, *([self.beat] if self.beat else []))

    def worker_names(self) -> dict[int, str]:
        """pid -> the name its claims carry (host:pid:random)."""
        names = Label.objects.exclude(worker="").values_list("worker", flat=True).distinct()
        return {int(name.split(":")[1]): name for name in names}

    def burst(
        self,
        count: int,
        *,
        kill_when_done: float | None = None,
        timeout: float = 180,
        threads: int = 8,
    ) -> Burst:
        """Send `count` webhooks over both web instances, wait until every label is done;
        with kill_when_done, kill -9 the first worker once that share of the labels is done
        (mid-burst) and time how long the survivors take to finish everything after it."""
        tag = uuid.uuid4().hex[:8]
        result = Burst(items=count)
        since = Item.objects.order_by("-id").values_list("id", flat=True).first() or 0

        def send(n: int) -> tuple[int, int]:
            url = self.web_urls[n % len(self.web_urls)]
            body = json.dumps({"external_id": f"{tag}-{n}", "content_text": f"{tag} item {n}"})
            response = requests.post(
                f"{url}/webhooks/{self.source.slug}/",
                data=body,
                headers=signed_headers(self.secret, body.encode()),
                timeout=30,
            )
            return n % len(self.web_urls), response.status_code

        calls_before = len(self.api.calls)
        started = time.monotonic()
        sent = run_in_threads(send, range(count), threads=threads, timeout=timeout)
        result.sent_seconds = time.monotonic() - started
        for web, status in sent:
            result.by_web[web] += 1
            result.statuses[status] += 1

        labels = Label.objects.filter(item_id__gt=since, item__source=self.source)
        deadline = started + timeout
        killed = None
        while time.monotonic() < deadline:
            done = labels.filter(status=Label.Status.DONE).count()
            if kill_when_done is not None and killed is None and done >= kill_when_done * count:
                kill_group(self.workers[0])
                killed = time.monotonic()
                result.killed_at = killed - started
            if done >= count and (kill_when_done is None or killed is not None):
                break
            time.sleep(0.1)
        finished = time.monotonic()
        result.drained_seconds = finished - started
        if killed is not None:
            result.recovered_seconds = finished - killed
        result.labels_not_done = labels.exclude(status=Label.Status.DONE).count() + (
            count - labels.count()
        )
        names = {name: pid for pid, name in self.worker_names().items()}
        for worker, n in (
            labels.filter(status=Label.Status.DONE)
            .values_list("worker")
            .annotate(n=Count("id"))
            .order_by()
        ):
            result.by_worker[names.get(worker, worker)] += n
        texts = Counter(
            call["content_text"]
            for call in list(self.api.calls)[calls_before:]
            if (call["content_text"] or "").startswith(tag)
        )
        result.api_calls = sum(texts.values())
        result.items_called_twice = sum(1 for n in texts.values() if n > 1)
        return result
