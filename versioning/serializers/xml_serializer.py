"""Django's XML serializer (already exact to the microsecond), for fixtures."""

from django.core.serializers import xml_serializer

from .base import FixtureSerializerMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(FixtureSerializerMixin, xml_serializer.Serializer):
    pass


Deserializer = xml_serializer.Deserializer
