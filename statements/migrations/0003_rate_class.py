"""Service tiers, the 1-hour cache write, queries, and the class of rate that priced."""

from django.db import migrations, models

import finops.fields


def batch_is_a_tier(apps, schema_editor):
    # `batch` was the only tier before service tiers.
    apps.get_model("statements", "StatementLine").objects.filter(batch=True).update(
        service_tier="batch"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("statements", "0002_vendor_bills"),
    ]

    operations = [
        migrations.AddField(
            model_name="statementline",
            name="above_tokens",
            field=models.BigIntegerField(
                default=0, help_text="The long-context threshold of the line's rate (0: base)."
            ),
        ),
        migrations.AddField(
            model_name="statementline",
            name="off_peak",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="statementline",
            name="service_tier",
            field=models.CharField(default="standard", max_length=16),
        ),
        migrations.AlterField(
            model_name="statementline",
            name="batch",
            field=models.BooleanField(default=False, help_text="service_tier is batch."),
        ),
        migrations.AlterField(
            model_name="statementline",
            name="unit_price",
            field=finops.fields.ExactDecimalField(
                blank=True,
                decimal_places=30,
                help_text="Per 1M tokens (per 1M queries for a query line).",
                max_digits=48,
                null=True,
            ),
        ),
        migrations.RunPython(batch_is_a_tier, migrations.RunPython.noop),
    ]
