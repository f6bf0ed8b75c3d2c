"""Django's JSON serializer, writing versioned rows to the microsecond."""

from django.core.serializers import json

from .base import ExactTimesMixin, FixtureSerializerMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(FixtureSerializerMixin, ExactTimesMixin, json.Serializer):
    pass


Deserializer = json.Deserializer
