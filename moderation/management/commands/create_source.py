"""`manage.py create_source SLUG`: a new source; prints its secret and token once."""

from django.core.management.base import BaseCommand, CommandError

from labelers.criteria import source_setup
from labelers.models import Labeler
from moderation.models import Source


class Command(BaseCommand):
    help = (
        "Create a source (an integrating product) and print its signing secret and API token once."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", help="display name (default: the slug)")
        parser.add_argument(
            "--labeler",
            action="append",
            dest="labelers",
            help="labeler slug to route to (repeatable; default: the default labeler)",
        )

    def handle(self, *args, slug, name=None, labelers=None, **options):
        if Source.objects.filter(slug=slug).exists():
            raise CommandError(f"source {slug!r} already exists")
        chosen = None
        if labelers:
            chosen = list(Labeler.objects.filter(slug__in=labelers))
            missing = set(labelers) - {lb.slug for lb in chosen}
            if missing:
                raise CommandError(f"unknown labeler(s): {', '.join(sorted(missing))}")
            # A source whose labelers cannot label sends every item to review unlabeled.
            broken = sorted(lb.slug for lb in chosen if not lb.active or not lb.versions.exists())
            if broken:
                raise CommandError(
                    f"labeler(s) {', '.join(broken)} are inactive or have no version: "
                    "items of this source would reach no labeler"
                )
        source, secret, token = source_setup(name=name or slug, slug=slug, labelers=chosen)
        self.stdout.write(f"Created source {source.slug} (id {source.pk}).")
        self.stdout.write(f"Webhook URL:     /webhooks/{source.slug}/")
        self.stdout.write(f"Signing secret:  {secret}")
        self.stdout.write(f"API token:       {token}")
        self.stdout.write("These are shown once; store them in the product's secret store.")
