"""Seed the demo workspace (`dev.py run --demo`): clearly marked sample content (text and
images) sent through the real intake into the `demo` source firstrun made (so its token, in
the credentials file, reads them, and the README's examples work), demo reviewer and senior
accounts, and a few dozen earlier items already decided, so that the labeler's quality and
threshold advice have something to show. New items are labeled by the local stand-in for the
labeling API that `--demo` starts beside the app."""

import base64
import io
import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from labelers.client import violation_score
from labelers.criteria import labeler_default, source_setup
from labelers.models import Label
from labelers.verdict import item_refresh
from moderation.intake import parse_body
from moderation.models import DecisionReason, Item, Source
from moderation.services.decisions import decision_record
from moderation.services.items import item_ingest

# The source firstrun makes (its secret and token are in the credentials file).
SLUG = "demo"

# Sample posts of a small forum: threats, slurs (written as placeholders), spam, and plenty of
# harmless text, so the queue shows near-misses as well as clear cases. The stand-in flags
# texts with "hate", "kill" or "violat" in them.
TEXTS = [
    "I will kill you if you show up at the meetup again.",
    "People like you should be hated out of this town. [slur removed for the demo]",
    "This new policy violates every rule of common sense, honestly.",
    "Great thread, thanks for the detailed write-up!",
    "Does anyone know a good recipe for sourdough without a starter?",
    "I hate Mondays so much lol",
    "Buy cheap followers now!!! visit my profile link for 90% off",
    "You are all idiots and I hope your accounts get banned.",
    "Kill the lights when you leave the server room, please.",
    "Reminder: the community call is on Thursday at 18:00 UTC.",
    "Posting my address here so the haters know where to find me: 12 Demo Street",
    "That referee decision was a violation of the offside rule, change my mind.",
    "<script>alert('hostile markup is shown as text')</script> nice try",
    "Anyone selling concert tickets for Saturday? DM me.",
    "I swear I'll make them pay for what they did to my brother. Hate them all.",
    "Lovely photo of the lake, where was this taken?",
    "Selling my old bike, 80 EUR, pick-up only.",
    "How do I report a bug in the mobile app?",
    "Stop spamming the channel or I will kill your thread.",
    "Our cat knocked the Christmas tree over again 😺",
    "If you violate the NDA we will see you in court.",
    "Meet me behind the school, you won't walk away this time.",
    "The documentary about deep-sea creatures was fascinating.",
    "Free crypto giveaway!!! send 1 coin, get 2 back, limited time",
    "I hate to say it, but the new update is better.",
    "Thank you moderators for keeping this place friendly.",
    "Nobody would miss you if you were gone. Just saying.",
    "Workshop slides are up on the wiki now.",
]

# Images with a caption: what the stand-in reads is the caption (it labels text only).
IMAGES = [
    ("A photo with a violent gesture (sample)", (150, 30, 30)),
    ("Holiday snapshot at the beach", (40, 120, 200)),
    ("Meme mocking a group: hate speech sample", (90, 60, 140)),
    ("Screenshot of a product listing", (230, 180, 60)),
    ("Graphic image: kill count overlay from a game", (30, 30, 30)),
    ("Drawing of a sunflower", (60, 160, 70)),
]


# Earlier items, labeled and decided before the demo starts: (text, label, confidence, what
# the reviewers decided). Low-confidence "1"s were mostly approved, confident ones removed, so
# the threshold advice proposes a minimum confidence.
HISTORY = [
    ("I hate waiting for the bus in the rain.", "1", 0.56, "approve"),
    ("This game is killing me, level 12 is impossible.", "1", 0.58, "approve"),
    ("My code violates every style guide, send help.", "1", 0.6, "approve"),
    ("Hate that the café closed early today.", "1", 0.61, "approve"),
    ("The comedian absolutely killed it last night.", "1", 0.63, "approve"),
    ("Parking there is a violation, you will get a ticket.", "1", 0.64, "approve"),
    ("I hate spiders more than anything.", "1", 0.66, "approve"),
    ("That joke killed the whole room.", "1", 0.68, "remove"),
    ("You lot are vermin and should be hated out of here.", "1", 0.7, "approve"),
    ("Kill the process and restart the server.", "1", 0.71, "approve"),
    ("Everyone from that town deserves to be hated.", "1", 0.76, "remove"),
    ("I know where you live and I will kill you.", "1", 0.79, "remove"),
    ("Go back where you came from, we hate your kind.", "1", 0.81, "remove"),
    ("Someone should kill that reporter.", "1", 0.83, "remove"),
    ("I hate you and I'm coming for your family.", "1", 0.85, "remove"),
    ("Your whole people violate decency by existing.", "1", 0.86, "remove"),
    ("I will kill every one of you at the meetup.", "1", 0.88, "remove"),
    ("People like her should be hated until they leave.", "1", 0.9, "remove"),
    ("Watch your back, I'll kill you after school.", "1", 0.92, "remove"),
    ("We hate them, let's make them disappear.", "1", 0.93, "remove"),
    ("Kill yourself, nobody wants you here.", "1", 0.95, "remove"),
    ("I hate you, die. [slur removed for the demo]", "1", 0.96, "remove"),
    ("They should all be killed, every one.", "1", 0.97, "approve"),
    ("Hate is all your group deserves.", "1", 0.98, "remove"),
]


def _image_data_url(caption: str, color: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (480, 320), color)
    draw = ImageDraw.Draw(image)
    for n in range(0, 480, 40):
        draw.line([(n, 0), (480 - n, 320)], fill=(255, 255, 255), width=2)
    draw.rectangle([(20, 250), (460, 300)], fill=(255, 255, 255))
    draw.text((30, 265), f"DEMO: {caption}"[:70], fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Command(BaseCommand):
    help = "Seed sample content and demo accounts for `dev.py run --demo` (once)."

    def handle(self, *args, **options):
        if not settings.DEMO_MODE:
            raise CommandError("Only in demo mode (DEMO_MODE=true), never on a real database.")
        lines = []
        source = Source.objects.filter(slug=SLUG).first()
        if source is None:  # firstrun made none (the database had a source already)
            source, secret, token = source_setup(name="Demo", slug=SLUG)
            lines.append(
                f"demo source: /webhooks/{SLUG}/\ndemo signing secret: {secret}\n"
                f"demo API token: {token}\n"
            )
        if source.items.filter(external_id="demo-0").exists():
            return  # seeded already
        bodies = [{"content_text": text} for text in TEXTS] + [
            {"content_text": caption, "content_image": _image_data_url(caption, color)}
            for caption, color in IMAGES
        ]
        for number, body in enumerate(bodies):
            raw = json.dumps({"external_id": f"demo-{number}", **body, "metadata": {"demo": True}})
            item_ingest(
                source=source, payload=parse_body(raw.encode()), webhook_id=f"demo-{number}"
            )
        User = get_user_model()
        for name, groups in (("reviewer", ["reviewer"]), ("senior", ["reviewer", "senior"])):
            if User.objects.filter(username=name).exists():
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(name, "", password)
            user.groups.set(Group.objects.filter(name__in=groups))
            lines.append(f"demo {name} user: {name}\ndemo {name} password: {password}\n")
        _seed_history(source, reviewer=User.objects.get(username="reviewer"))
        path = settings.DATA_DIR / "first-run-credentials.txt"
        with open(path, "a") as handle:
            handle.write("".join(lines))
        path.chmod(0o600)
        self.stdout.write(f"Demo: {len(bodies)} sample items sent to the labeling stand-in.")


def _seed_history(source: Source, *, reviewer) -> None:
    """The earlier items (HISTORY): through the intake, labeled as the stand-in would have
    labeled them by the labeler's current version, and decided by the demo reviewer."""
    version = labeler_default().current_version
    if version is None:
        return
    remove_reason = DecisionReason.objects.filter(action="remove", active=True).first()
    for number, (text, label, confidence, action) in enumerate(HISTORY):
        raw = json.dumps(
            {
                "external_id": f"demo-earlier-{number}",
                "content_text": text,
                "metadata": {"demo": True},
            }
        )
        item, _ = item_ingest(
            source=source, payload=parse_body(raw.encode()), webhook_id=f"demo-earlier-{number}"
        )
        with transaction.atomic():
            Label.objects.create(
                item=item,
                revision=item.revision,
                labeler_version=version,
                content_hash=item.content_hash,
                status=Label.Status.DONE,
                label=label,
                confidence=confidence,
                violation_score=violation_score(label, confidence),
                model=version.model,
                labeled_at=timezone.now(),
            )
            item_refresh(item_id=item.pk)
        decision_record(
            item=Item.objects.get(pk=item.pk),
            reviewer=reviewer,
            action=action,
            reason_id=remove_reason.pk if action == "remove" and remove_reason else None,
        )
