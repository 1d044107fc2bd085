"""manage.py audit_verify: exit 0 when the audit log's hash chain holds, 1 naming the first
broken row when a row was changed or removed."""

from django.core.management.base import BaseCommand, CommandError

from audit.chain import chain_verify


class Command(BaseCommand):
    help = "Check the audit log's hash chain; fails naming the first changed or removed row."

    def handle(self, *args, **options):
        checked, broken = chain_verify()
        if broken is not None:
            raise CommandError(f"audit log broken at {broken} ({checked} rows before it hold)")
        self.stdout.write(f"audit log ok: {checked} rows, chain intact")
