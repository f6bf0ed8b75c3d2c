"""Django's JSON Lines serializer, writing versioned rows to the microsecond."""

from django.core.serializers import jsonl

from .base import ExactTimesMixin, FixtureSerializerMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(FixtureSerializerMixin, ExactTimesMixin, jsonl.Serializer):
    pass


Deserializer = jsonl.Deserializer
