from rest_framework import serializers

from purchases.models import Option, Project, Purchase
from purchases.services import MAX_PACKS


class OptionSerializer(serializers.ModelSerializer):
    unit_price = serializers.DecimalField(max_digits=28, decimal_places=8, read_only=True)

    class Meta:
        model = Option
        fields = ["id", "name", "pack_shares", "pack_price", "unit_price", "is_active"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    options = OptionSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "options"]
        read_only_fields = fields


class PurchaseInputSerializer(serializers.Serializer):
    option = serializers.IntegerField(help_text="The option's id.")
    packs = serializers.IntegerField(min_value=1, max_value=MAX_PACKS, default=1)


class PurchaseSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    option_name = serializers.CharField(source="option.name", read_only=True)

    class Meta:
        model = Purchase
        fields = ["id", "project", "option", "option_name", "kind", "packs", "shares", "price",
                  "created_at"]
        read_only_fields = fields


class PurchaseFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Purchase.Kind.choices, required=False)
