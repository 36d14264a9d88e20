from rest_framework import serializers


class MoodOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    texts = serializers.IntegerField(help_text="inbound texts scored so far")
    running = serializers.FloatField(help_text="running sentiment, -1 (very negative) to 1 (very positive)")
    last = serializers.FloatField()
    lowest = serializers.FloatField()
    flags = serializers.ListField(child=serializers.CharField(), help_text="red flag kinds raised, in order")
