"""One small model kept four ways: no history, versioning, simple-history, reversion."""

import uuid

import reversion
from django.db import models
from simple_history.models import HistoricalRecords

from versioning.models import Versioned


class Fields(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()
    counter = models.IntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self):
        return self.title


class PlainNote(Fields):
    """No history: the floor."""


class VersionedNote(Fields, Versioned):
    """This app."""


class HistoryNote(Fields):
    """django-simple-history."""

    history = HistoricalRecords()


@reversion.register()
class ReversionNote(Fields):
    """django-reversion."""


class HandNote(Fields):
    """Hand-written versioned rows with the same columns and constraints as ours."""

    identity = models.UUIDField(default=uuid.uuid4)
    version = models.PositiveIntegerField(default=1)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["identity"],
                condition=models.Q(valid_to__isnull=True),
                name="handnote_current",
            ),
            models.UniqueConstraint(
                fields=["identity", "version"], name="handnote_version"
            ),
        ]
        indexes = [
            models.Index(fields=["valid_from", "valid_to"], name="handnote_asof")
        ]
