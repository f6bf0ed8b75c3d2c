"""The demo's models: the versioned-rows recipe's two examples and a catalog."""

from django.db import models

from versioning.fields import PinnedForeignKey
from versioning.models import Versioned


class Example(Versioned):
    """Recipe example 1: saving a change inserts a new row."""

    data = models.CharField(max_length=100)

    def __str__(self):
        return self.data


class Child(Versioned):
    """Recipe example 2: the parent follows the child to its new version."""

    data = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "children"

    def __str__(self):
        return self.data


class Parent(models.Model):
    name = models.CharField(max_length=100, default="parent")
    child = models.OneToOneField(
        Child, null=True, blank=True, on_delete=models.SET_NULL, related_name="parent"
    )

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Product(Versioned):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    description = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(valid_to__isnull=True),
                name="product_name_unique_when_current",
            )
        ]

    def __str__(self):
        return self.name


class Order(models.Model):
    customer = models.CharField(max_length=100)
    placed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Order {self.pk} for {self.customer}"


class OrderLine(models.Model):
    """Pinned: an order line keeps the product version (and price) it was sold at."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = PinnedForeignKey(Product, related_name="order_lines")
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self):
        return f"{self.quantity} x {self.product} at {self.product.price}"


class Favourite(models.Model):
    """Not pinned: a favourite follows the product to its newest version."""

    user = models.CharField(max_length=100)
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="favourites"
    )

    def __str__(self):
        return f"{self.user} likes {self.product}"
