"""Load the demo data once; running it again changes nothing."""

import datetime
from decimal import Decimal
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

import versioning
from demo_project.catalog.models import (
    Child,
    Example,
    Favourite,
    Order,
    OrderLine,
    Parent,
    Product,
    Tag,
)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = "Load the demo data (idempotent) and print the admin login."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", default="8000", help="The port the demo will be served on."
        )

    def handle(self, *args, **options):
        if Product.all_versions.exists():
            self.stdout.write("Demo data already loaded; nothing changed.")
        else:
            with transaction.atomic():
                self.load()
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.print_examples()
        self.stdout.write(
            f"\nAdmin: http://127.0.0.1:{options['port']}/admin/  "
            f"user {self.style.SUCCESS(ADMIN_USERNAME)}  "
            f"password {self.style.SUCCESS(ADMIN_PASSWORD)}\n"
            f"Your own views (VersionedModelForm): "
            f"http://127.0.0.1:{options['port']}/products/\n"
        )

    def load(self):
        # The demo's history is spread over the past weeks so that as-of
        # queries and the history command have something to tell apart.
        start = timezone.now() - datetime.timedelta(days=21)
        days = iter(range(0, 21, 2))

        def day():
            moment = start + datetime.timedelta(days=next(days), hours=9)
            return mock.patch("django.utils.timezone.now", return_value=moment)

        User = get_user_model()
        admin = User.objects.create_superuser(
            ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD
        )
        alice = User.objects.create_user("alice", password="alice", is_staff=True)
        bob = User.objects.create_user("bob", password="bob", is_staff=True)

        # The versioned-rows recipe, example 1: an edit inserts a new row.
        with day(), versioning.changes(user=admin, reason="recipe example 1"):
            e1 = Example.objects.create(data="e1")
            e1.data = "e2"
            e1.save()

        # Example 2: the parent follows its child to the new version.
        with day(), versioning.changes(user=admin, reason="recipe example 2"):
            p1 = Parent.objects.create(name="p1", child=Child.objects.create(data="c1"))
            p1.child.data = "c2"
            p1.child.save()

        lamp_tags = [Tag.objects.create(name=n) for n in ("lighting", "living room")]
        Tag.objects.create(name="office")
        with day(), versioning.changes(user=alice, reason="new catalog"):
            lamp = Product.objects.create(name="Desk lamp", price=Decimal("29.00"))
            lamp.tags.set(lamp_tags)
            chair = Product.objects.create(name="Office chair", price=Decimal("149.00"))
            Product.objects.create(name="Bookshelf", price=Decimal("89.00"))
            stool = Product.objects.create(name="Bar stool", price=Decimal("45.00"))

        order = Order.objects.create(customer="Carol")
        OrderLine.objects.create(order=order, product=lamp, quantity=2)
        Favourite.objects.create(user="Carol", product=lamp)

        with day(), versioning.changes(user=bob, reason="supplier price rise"):
            lamp.price = Decimal("34.00")
            lamp.save()
        with day(), versioning.changes(user=alice, reason="better description"):
            lamp.description = "Adjustable arm, warm white LED."
            lamp.save()
        with day(), versioning.changes(user=bob, reason="typo"):
            chair.name = "Office chair (ergonomic)"
            chair.save()
        with day(), versioning.changes(user=alice, reason="discontinued"):
            stool.delete()

    def print_examples(self):
        rows = list(Example.all_versions.order_by("id").values_list("id", "data"))
        self.stdout.write(f"Example 1: Example rows by id: {rows}")
        parent = Parent.objects.select_related("child").get(name="p1")
        children = list(Child.all_versions.order_by("id").values_list("id", "data"))
        self.stdout.write(
            f"Example 2: Child rows by id: {children}; "
            f"parent.child_id = {parent.child_id}"
        )
        lamp = Product.objects.get(name="Desk lamp")
        self.stdout.write(
            f"\nThe desk lamp's history "
            f"(python manage.py history catalog.Product {lamp.pk}):"
        )
        call_command(
            "history", "catalog.Product", str(lamp.identity), stdout=self.stdout
        )
        line = OrderLine.objects.select_related("product").first()
        favourite = Favourite.objects.select_related("product").first()
        self.stdout.write(
            f"\nPinned: the order line still shows version {line.product.version} at "
            f"{line.product.price}; the favourite follows to version "
            f"{favourite.product.version} at {favourite.product.price}."
        )
