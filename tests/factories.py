import factory
from django.contrib.auth import get_user_model

from tests.testapp import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")


class ExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Example

    data = factory.Sequence(lambda n: f"example {n}")


class ChildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Child

    data = factory.Sequence(lambda n: f"child {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Tag

    name = factory.Sequence(lambda n: f"tag {n}")


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Item

    name = factory.Sequence(lambda n: f"item {n}")
    price = 10
    description = "a thing"


class DocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Document

    title = factory.Sequence(lambda n: f"document {n}")


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Review

    item = factory.SubFactory(ItemFactory)
    text = "fine"


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Order

    item = factory.SubFactory(ItemFactory)


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.OrderLine

    item = factory.SubFactory(ItemFactory)


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Article

    title = factory.Sequence(lambda n: f"article {n}")
    slug = factory.Sequence(lambda n: f"article-{n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Team

    name = factory.Sequence(lambda n: f"team {n}")


class PlayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Player

    name = factory.Sequence(lambda n: f"player {n}")


def link_as_given(owner, field_name, *targets):
    """
    Links written into the owner's row as a fixture writes them, without the
    new version a link change through the manager makes (for tests about
    other writes, whose counts assume version 1).
    """
    field = type(owner)._meta.get_field(field_name)
    through = field.remote_field.through
    through.objects.bulk_create(
        through(
            **{field.m2m_field_name(): owner, field.m2m_reverse_field_name(): target}
        )
        for target in targets
    )
