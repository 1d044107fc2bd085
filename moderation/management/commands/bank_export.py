"""`manage.py bank_export NAME`: the bank's hashes as CSV (type,hash,note) on stdout."""

from django.core.management.base import BaseCommand, CommandError

from moderation.models import Bank
from moderation.services.banks import bank_export


class Command(BaseCommand):
    help = "Print the bank NAME's hashes as CSV (type,hash,note), the format bank_import reads."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        bank = Bank.objects.filter(name=name).first()
        if bank is None:
            raise CommandError(f"no bank named {name!r}")
        self.stdout.write(bank_export(bank=bank), ending="")
