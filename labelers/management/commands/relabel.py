"""`manage.py relabel`: label a selection of items with a labeler version."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from labelers.dispatch import relabel_run_create, relabel_run_execute
from labelers.models import Label, Labeler
from lib.text import plural
from moderation.models import Source


def _when(value: str | None):
    if not value:
        return None
    parsed = parse_datetime(value) or (
        timezone.datetime.combine(parse_date(value), timezone.datetime.min.time())
        if parse_date(value)
        else None
    )
    if parsed is None:
        raise CommandError(f"not a date: {value!r}")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


class Command(BaseCommand):
    help = "Label a selection of items with a labeler version (idempotent, resumable)."

    def add_arguments(self, parser):
        parser.add_argument("labeler", help="labeler slug")
        parser.add_argument(
            "--labeler-version", type=int, dest="number", help="version number (default: current)"
        )
        parser.add_argument("--source", help="only items of this source slug")
        parser.add_argument("--since", help="only items received at or after (YYYY-MM-DD[THH:MM])")
        parser.add_argument("--until", help="only items received before")
        parser.add_argument("--wait", action="store_true", help="follow progress until done")

    def handle(self, *args, labeler, number, source, since, until, wait, **options):
        found = Labeler.objects.filter(slug=labeler).first()
        if found is None:
            raise CommandError(f"unknown labeler {labeler!r}")
        chosen = found.versions.filter(number=number).first() if number else found.current_version
        if chosen is None:
            raise CommandError(f"labeler {labeler!r} has no published version {number or ''}")
        if chosen.is_draft:
            raise CommandError(f"{chosen} is a draft: publish it before relabeling with it")
        source_obj = None
        if source:
            source_obj = Source.objects.filter(slug=source).first()
            if source_obj is None:
                raise CommandError(f"unknown source {source!r}")
        # Synchronous here (a terminal can wait, unlike a web request): the labels are added
        # as bulk work, which beat's dispatch sends to the workers behind fresh items.
        run = relabel_run_create(
            labeler_version=chosen, source=source_obj, since=_when(since), until=_when(until)
        )
        with tqdm(desc="queueing", unit="item") as bar:
            done = relabel_run_execute(run_id=run.pk, progress=bar.update)
        run = done or run
        self.stdout.write(
            f"Relabel run {run.pk}: {plural(run.total, 'item')} selected, "
            f"{plural(run.created, 'label')} queued "
            f"with {chosen} (the rest were already labeled by it)."
        )
        if not wait:
            return
        with tqdm(total=run.total, desc="labeling", unit="item") as bar:
            while True:
                progress = run.progress()
                finished = sum(progress.get(s, 0) for s in (Label.Status.DONE, Label.Status.FAILED))
                bar.n = finished
                bar.set_postfix({k: v for k, v in progress.items() if k != "total"})
                bar.refresh()
                if finished >= run.total:
                    break
                time.sleep(1)
