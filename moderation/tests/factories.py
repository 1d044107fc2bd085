import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from labelers.models import Labeler, LabelerVersion
from moderation.models import DecisionReason, Item, Source, hash_token, new_webhook_secret
from moderation.models import queue_key as sort_key
from moderation.services.decisions import decision_record


def reason_id(action: str, index: int = 0) -> int:
    """The id of one of the starting reasons (roles.py) for `action`."""
    return DecisionReason.objects.filter(action=action, active=True)[index].pk


class LabelerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Labeler
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Labeler {n}")
    slug = factory.Sequence(lambda n: f"labeler-{n}")

    @factory.post_generation
    def criteria(obj, create, extracted, **kwargs):
        LabelerVersion.objects.create(
            labeler=obj, number=1, criteria_text=extracted or "Label hateful content"
        )


class SourceFactory(factory.django.DjangoModelFactory):
    """A source routed to one fresh labeler; `_secret` and `_token` hold its credentials."""

    class Meta:
        model = Source
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    webhook_secret = factory.LazyFunction(new_webhook_secret)
    api_token_hash = factory.LazyAttribute(lambda o: hash_token(f"token-{o.slug}"))

    @factory.post_generation
    def labelers(obj, create, extracted, **kwargs):
        obj._secret = obj.webhook_secret
        obj._token = f"token-{obj.slug}"
        obj.labelers.set(extracted if extracted is not None else [LabelerFactory()])


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"reviewer{n}")
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def reviewer(obj, create, extracted, **kwargs):
        if extracted is not False:
            obj.groups.add(Group.objects.get(name="reviewer"))

    @factory.post_generation
    def senior(obj, create, extracted, **kwargs):
        if extracted:
            obj.groups.add(Group.objects.get(name="senior"))


class ItemFactory(factory.django.DjangoModelFactory):
    """A flagged item waiting in the queue (no labels: for tests of the review pages)."""

    class Meta:
        model = Item

    source = factory.SubFactory(SourceFactory)
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    webhook_id = factory.Sequence(lambda n: f"msg_{n}")
    content_text = factory.Sequence(lambda n: f"flagged text {n}")
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    status = Item.Status.FLAGGED
    violation_score = 0.9
    queue_score = factory.SelfAttribute("violation_score")
    # The queue's stored sort key, as the services keep it (not past any SLA).
    queue_key = factory.LazyAttribute(lambda o: sort_key(o.queue_score, breached=False))


def decided_flagged_item(source, reviewer, n: int, action: str = "remove"):
    """Item `post-<n>` of `source`, flagged, then decided by `reviewer` (with the action's
    first reason): its Decision."""
    item = Item.objects.create(
        source=source,
        external_id=f"post-{n}",
        webhook_id=f"msg-{n}",
        content_text="x",
        content_hash=f"h{n}",
        status=Item.Status.FLAGGED,
        queue_score=0.9,
    )
    reason = reason_id(action) if action != "approve" else None
    return decision_record(item=item, reviewer=reviewer, action=action, reason_id=reason)
