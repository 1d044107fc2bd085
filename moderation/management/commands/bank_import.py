"""`manage.py bank_import NAME FILE.csv --action remove|review|allow`: hashes into a bank."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelers.tasks import bank_retro_start
from moderation.models import Bank
from moderation.services.banks import BankFileInvalid, bank_import


class Command(BaseCommand):
    help = (
        "Import a CSV of hashes (columns type,hash,note; type md5, pdq or text_sha256; lowercase "
        "hex) into the bank NAME, created with --action if new. Importing the same file twice "
        "adds nothing; a file with a malformed line stores nothing and names every bad line."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("file")
        parser.add_argument("--action", choices=Bank.Action.values)
        parser.add_argument(
            "--no-retroactive",
            action="store_true",
            help="do not match recent items against the new hashes",
        )

    def handle(self, *args, name, file, action=None, no_retroactive=False, **options):
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from exc
        try:
            bank, added = bank_import(name=name, text=text, action=action)
        except BankFileInvalid as exc:
            raise CommandError(
                f"{file}: nothing imported, {len(exc.errors)} malformed line(s):\n"
                + "\n".join(exc.errors)
            ) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if added and not no_retroactive:
            bank_retro_start(added)  # recent items matched against the new hashes
        self.stdout.write(f"{bank.name} ({bank.action}): {len(added)} new hash(es)")
