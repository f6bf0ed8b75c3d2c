"""Concrete models covering each variant the app must handle."""

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.db import models
from django.db.models.functions import Length

from versioning.fields import PinnedForeignKey
from versioning.managers import AllVersionsManager, CurrentManager, VersionedQuerySet
from versioning.models import Versioned


class Example(Versioned):
    """The recipe's first example: an edit inserts a new row."""

    data = models.CharField(max_length=100)

    def __str__(self):
        return self.data


class Child(Versioned):
    data = models.CharField(max_length=100)

    def __str__(self):
        return self.data


class Parent(models.Model):
    """A plain model; its one-to-one follows the child from version to version."""

    child = models.OneToOneField(
        Child, null=True, on_delete=models.SET_NULL, related_name="parent"
    )

    def __str__(self):
        return f"parent of {self.child_id}"


class Tag(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Item(Versioned):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    description = models.TextField(blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")
    suppliers = models.ManyToManyField(
        "Supplier", through="Supply", blank=True, related_name="items"
    )

    class Meta:
        # Does not inherit Versioned.Meta: the version constraints must still exist.
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(valid_to__isnull=True),
                name="item_name_unique_when_current",
            )
        ]

    def __str__(self):
        return self.name


class Order(models.Model):
    """A plain referrer: its key follows the item."""

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self):
        return f"order of {self.item_id}"


class OrderLine(models.Model):
    """A pinned referrer: keeps the item version it was sold at."""

    item = PinnedForeignKey(Item, related_name="order_lines")

    def __str__(self):
        return f"line for {self.item_id}"


class Review(Versioned):
    """A versioned referrer."""

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="reviews")
    text = models.TextField()

    def __str__(self):
        return self.text


class Bundle(models.Model):
    """A many-to-many declared elsewhere, pointing at the versioned model."""

    name = models.CharField(max_length=50)
    items = models.ManyToManyField(Item, related_name="bundles")

    def __str__(self):
        return self.name


class Document(Versioned):
    """A UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=100)
    body = models.TextField(blank=True, default="")
    # NULL and "" must both be storable: setting a field to NULL is a change.
    summary = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001

    def __str__(self):
        return self.title


class Supplier(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Supply(models.Model):
    """An explicit through table on a many-to-many declared on the versioned model."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    supplier = models.ForeignKey(Supplier, on_delete=models.CASCADE)
    cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    def __str__(self):
        return f"{self.supplier_id} supplies {self.item_id}"


class Shelf(models.Model):
    """An explicit through table, declared elsewhere, pointing at a versioned model."""

    name = models.CharField(max_length=50)
    documents = models.ManyToManyField(
        Document, through="Placement", related_name="shelves"
    )

    def __str__(self):
        return self.name


class Placement(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE)
    document = models.ForeignKey(Document, on_delete=models.CASCADE)
    position = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.document_id} on {self.shelf_id}"


class Note(models.Model):
    """A generic foreign key; it keeps the version it was set to."""

    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE
    )
    object_id = models.CharField(max_length=64)
    target = GenericForeignKey("content_type", "object_id")
    text = models.TextField()

    def __str__(self):
        return self.text


class Article(Versioned):
    """Columns Django or the database fill in, and constraints on data columns."""

    title = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    counter = models.IntegerField(default=0)
    amount = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    title_length = models.GeneratedField(
        expression=Length("title"), output_field=models.IntegerField(), db_persist=True
    )
    rating = models.IntegerField(db_default=3)
    category = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slug"],
                condition=models.Q(valid_to__isnull=True),
                name="article_slug_unique_when_current",
            ),
            models.CheckConstraint(
                condition=models.Q(counter__gte=0), name="article_counter_not_negative"
            ),
        ]

    def __str__(self):
        return self.title


class Team(Versioned):
    """Two versioned models pointing at each other (team.captain, player.team)."""

    name = models.CharField(max_length=50)
    captain = models.ForeignKey(
        "Player",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="captain_of",
    )

    def __str__(self):
        return self.name


class Player(Versioned):
    name = models.CharField(max_length=50)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT)

    def __str__(self):
        return self.name


class PageQuerySet(VersionedQuerySet):
    def published(self):
        return self.filter(published=True)


class Page(Versioned):
    """A user's own queryset methods, through every manager and as_of()."""

    title = models.CharField(max_length=100)
    published = models.BooleanField(default=False)

    objects = CurrentManager.from_queryset(PageQuerySet)()
    all_versions = AllVersionsManager.from_queryset(PageQuerySet)()

    def __str__(self):
        return self.title


class Comment(Versioned):
    """A versioned referrer of a versioned model (page.comments)."""

    page = models.ForeignKey(Page, on_delete=models.PROTECT, related_name="comments")
    text = models.CharField(max_length=100)

    def __str__(self):
        return self.text


class Directory(Versioned):
    """CleanerVersion's directory tree: a versioned model pointing at itself."""

    name = models.CharField(max_length=50)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )

    def __str__(self):
        return self.name


class Wine(Versioned):
    name = models.CharField(max_length=50)
    vintage = models.IntegerField(default=2000)

    def __str__(self):
        return self.name


class WineDrinker(Versioned):
    """CleanerVersion's wine drinkers: a many-to-many between versioned models."""

    name = models.CharField(max_length=50)
    glasses = models.ManyToManyField(Wine, blank=True, related_name="drinkers")

    def __str__(self):
        return self.name


class Poll(Versioned):
    """django-simple-history's polls."""

    question = models.CharField(max_length=200)

    def __str__(self):
        return self.question


class Choice(Versioned):
    poll = models.ForeignKey(Poll, on_delete=models.PROTECT, related_name="choices")
    choice = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)

    def __str__(self):
        return self.choice


class Place(Versioned):
    """django-simple-history's places: a plain restaurant one-to-one with a place."""

    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Restaurant(models.Model):
    place = models.OneToOneField(
        Place, on_delete=models.PROTECT, related_name="restaurant"
    )
    rating = models.IntegerField(default=0)

    def __str__(self):
        return f"restaurant at {self.place_id}"


# delete() and the referrers' on_delete -----------------------------------------
#
# CleanerVersion's delete-handler scenario: a city, its clubs, and what refers
# to a club, with a versioned and a plain referrer for every on_delete.


class City(Versioned):
    name = models.CharField(max_length=50)

    class Meta:
        verbose_name_plural = "cities"

    def __str__(self):
        return self.name


def free_agents():
    """The club SET() and SET_DEFAULT hand a club's referrers over to."""
    return Club.objects.filter(name="free agents").values_list("pk", flat=True).first()


class Club(Versioned):
    """Deleting a city closes its clubs (a versioned CASCADE)."""

    name = models.CharField(max_length=50)
    city = models.ForeignKey(
        City, null=True, blank=True, on_delete=models.CASCADE, related_name="clubs"
    )

    def __str__(self):
        return self.name


class Mascot(Versioned):
    """Versioned CASCADE, one level below the city."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(Club, on_delete=models.CASCADE, related_name="mascots")

    def __str__(self):
        return self.name


class Fan(Versioned):
    """Versioned SET(): a fan of a deleted club follows the free agents."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(
        Club,
        null=True,
        blank=True,
        on_delete=models.SET(free_agents),
        related_name="fans",
    )

    def __str__(self):
        return self.name


class RabidFan(Versioned):
    """Versioned SET_NULL, with two keys that one delete may both clear."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(
        Club,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rabid_fans",
    )
    rival = models.ForeignKey(
        Club, null=True, blank=True, on_delete=models.SET_NULL, related_name="rivals"
    )

    def __str__(self):
        return self.name


class Sponsor(Versioned):
    """Versioned SET_DEFAULT."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(
        Club,
        null=True,
        blank=True,
        default=free_agents,
        on_delete=models.SET_DEFAULT,
        related_name="sponsors",
    )

    def __str__(self):
        return self.name


class Stadium(Versioned):
    """
    Versioned RESTRICT, Django's album-and-song example: a club cannot go
    while its stadium stands, unless the city goes and takes both with it.
    """

    name = models.CharField(max_length=50)
    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="stadiums")
    club = models.ForeignKey(Club, on_delete=models.RESTRICT, related_name="stadiums")

    def __str__(self):
        return self.name


class NonFan(Versioned):
    """Versioned DO_NOTHING: keeps pointing at the club's last row."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(Club, on_delete=models.DO_NOTHING, related_name="non_fans")

    def __str__(self):
        return self.name


class WizardFan(Versioned):
    """Versioned PROTECT below a CASCADE: protects the club and its city."""

    name = models.CharField(max_length=50)
    club = models.ForeignKey(Club, on_delete=models.PROTECT, related_name="wizard_fans")

    def __str__(self):
        return self.name


class Ticket(models.Model):
    """Plain CASCADE: deleted through Django's collector."""

    club = models.ForeignKey(Club, on_delete=models.CASCADE, related_name="tickets")

    def __str__(self):
        return f"ticket {self.pk}"


class Seat(models.Model):
    """A plain referrer of a plain referrer: Django's own on_delete applies."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="seats")

    def __str__(self):
        return f"seat {self.pk}"


class Refund(models.Model):
    """Plain PROTECT below a plain CASCADE: Django's collector refuses."""

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="refunds")

    def __str__(self):
        return f"refund {self.pk}"


class Scarf(models.Model):
    """Plain SET_NULL."""

    club = models.ForeignKey(
        Club, null=True, blank=True, on_delete=models.SET_NULL, related_name="scarves"
    )

    class Meta:
        verbose_name_plural = "scarves"

    def __str__(self):
        return f"scarf {self.pk}"


class Kit(models.Model):
    """Plain SET_DEFAULT."""

    club = models.ForeignKey(
        Club,
        null=True,
        blank=True,
        default=free_agents,
        on_delete=models.SET_DEFAULT,
        related_name="kits",
    )

    def __str__(self):
        return f"kit {self.pk}"


class Banner(models.Model):
    """Plain SET()."""

    club = models.ForeignKey(
        Club,
        null=True,
        blank=True,
        on_delete=models.SET(free_agents),
        related_name="banners",
    )

    def __str__(self):
        return f"banner {self.pk}"


class Trophy(models.Model):
    """Plain RESTRICT."""

    club = models.ForeignKey(Club, on_delete=models.RESTRICT, related_name="trophies")

    class Meta:
        verbose_name_plural = "trophies"

    def __str__(self):
        return f"trophy {self.pk}"


class Chant(models.Model):
    """Plain DO_NOTHING."""

    club = models.ForeignKey(Club, on_delete=models.DO_NOTHING, related_name="chants")

    def __str__(self):
        return f"chant {self.pk}"


# prune and fixtures ------------------------------------------------------------


class Recipe(Versioned):
    """A generic relation on a versioned model: each note is on one version."""

    title = models.CharField(max_length=100)
    served_at = models.TimeField(null=True, blank=True)
    notes = GenericRelation(Note)

    def __str__(self):
        return self.title
