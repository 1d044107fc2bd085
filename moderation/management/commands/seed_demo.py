"""Seed the demo workspace (`dev.py run --demo`): a source of clearly marked sample content
(text and images) sent through the real intake, demo reviewer and senior accounts. Labels
come from the local stand-in for the labeling API that `--demo` starts beside the app."""

import base64
import io
import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from PIL import Image, ImageDraw

from labelers.criteria import labeler_default
from moderation.intake import parse_body
from moderation.models import Source
from moderation.services.items import item_ingest
from moderation.services.sources import source_create

SLUG = "demo-samples"

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
        if Source.objects.filter(slug=SLUG).exists():
            return
        source, _, _ = source_create(
            name="Demo: sample content", slug=SLUG, labelers=[labeler_default()]
        )
        bodies = [{"content_text": text} for text in TEXTS] + [
            {"content_text": caption, "content_image": _image_data_url(caption, color)}
            for caption, color in IMAGES
        ]
        for number, body in enumerate(bodies):
            raw = json.dumps({"external_id": f"demo-{number}", **body, "metadata": {"demo": True}})
            item_ingest(
                source=source, payload=parse_body(raw.encode()), webhook_id=f"demo-{number}"
            )
        lines = []
        User = get_user_model()
        for name, groups in (("reviewer", ["reviewer"]), ("senior", ["reviewer", "senior"])):
            if User.objects.filter(username=name).exists():
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(name, "", password)
            user.groups.set(Group.objects.filter(name__in=groups))
            lines.append(f"demo {name} user: {name}\ndemo {name} password: {password}\n")
        path = settings.DATA_DIR / "first-run-credentials.txt"
        with open(path, "a") as handle:
            handle.write("".join(lines))
        path.chmod(0o600)
        self.stdout.write(f"Demo: {len(bodies)} sample items sent to the labeling stand-in.")
