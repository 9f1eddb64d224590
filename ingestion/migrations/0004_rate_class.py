"""Service tiers, the 1-hour cache write, queries, and the class of rate that priced."""

import django.db.models.expressions
from django.db import migrations, models


def batch_is_a_tier(apps, schema_editor):
    # `batch` was the only tier before service tiers.
    apps.get_model("ingestion", "UsageEvent").objects.filter(batch=True).update(
        service_tier="batch"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("finops", "0004_price_rates"),
        ("ingestion", "0003_feature_kill_switch"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="usageevent",
            name="usage_event_token_vector_consistent",
        ),
        migrations.AddField(
            model_name="usageevent",
            name="above_tokens",
            field=models.BigIntegerField(
                default=0, help_text="The long-context threshold whose rates priced it (0: base)."
            ),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="cache_write_1h_tokens",
            field=models.BigIntegerField(
                default=0, help_text="The part of cache_write_tokens written with a 1-hour TTL."
            ),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="off_peak",
            field=models.BooleanField(default=False, help_text="Priced at off-peak rates."),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="queries",
            field=models.BigIntegerField(default=0, help_text="Rerank or search units."),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="service_tier",
            field=models.CharField(
                choices=[
                    ("standard", "Standard"),
                    ("batch", "Batch"),
                    ("flex", "Flex"),
                    ("priority", "Priority"),
                ],
                default="standard",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="batch",
            field=models.BooleanField(default=False, help_text="service_tier is batch."),
        ),
        migrations.AddConstraint(
            model_name="usageevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("output_tokens__gte", models.F("reasoning_tokens")),
                    (
                        "input_tokens__gte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("cached_input_tokens"), "+", models.F("cache_write_tokens")
                        ),
                    ),
                    ("cached_input_tokens__gte", 0),
                    ("cache_write_tokens__gte", models.F("cache_write_1h_tokens")),
                    ("cache_write_1h_tokens__gte", 0),
                    ("queries__gte", 0),
                    ("reasoning_tokens__gte", 0),
                    ("grounding_tokens__gte", 0),
                    ("wasted_tokens__gte", 0),
                ),
                name="usage_event_token_vector_consistent",
            ),
        ),
        migrations.RunPython(batch_is_a_tier, migrations.RunPython.noop),
    ]
