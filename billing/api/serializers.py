from rest_framework import serializers

from billing.models import ContactRole, Customer, CustomerContact


class ContactSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(choices=ContactRole.choices, default=ContactRole.MEMBER)

    class Meta:
        model = CustomerContact
        fields = ["email", "name", "role"]


class CustomerSerializer(serializers.ModelSerializer):
    contacts = ContactSerializer(many=True, required=False)

    class Meta:
        model = Customer
        fields = ["external_id", "name", "email", "tax_rate", "metadata", "contacts", "created_at"]
        read_only_fields = ["created_at"]
        # Uniqueness is the service's (409 customer_exists), not a 400 from the serializer.
        extra_kwargs = {"external_id": {"validators": []}}

    def validate_contacts(self, contacts):
        emails = [c["email"].lower() for c in contacts]
        if len(emails) != len(set(emails)):
            raise serializers.ValidationError("Each contact email may appear once.")
        return contacts


class CustomerUpdateSerializer(CustomerSerializer):
    class Meta(CustomerSerializer.Meta):
        read_only_fields = ["external_id", "created_at"]
