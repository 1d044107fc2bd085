import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from labelers.models import Labeler, LabelerVersion
from moderation.models import Source, hash_token, new_webhook_secret


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
            obj.groups.add(Group.objects.get_or_create(name="reviewer")[0])
