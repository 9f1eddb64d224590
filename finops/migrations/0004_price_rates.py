"""Price rows gain rates beyond their base columns (service tiers, long prompts,
off-peak hours) and frozen vendor rules; the four batch columns become batch rates, and
the rows that exist keep the pricing they billed with (legacy rules)."""

import django.db.models.deletion
import django.db.models.functions.comparison
import django.db.models.lookups
from django.db import migrations, models

import finops.fields

BATCH_COLUMNS = {
    "batch_input_per_million": "input",
    "batch_output_per_million": "output",
    "batch_cached_input_per_million": "cached_input",
    "batch_cache_write_per_million": "cache_write",
}


def batch_columns_to_rates(apps, schema_editor):
    ModelPrice = apps.get_model("finops", "ModelPrice")
    PriceRate = apps.get_model("finops", "PriceRate")
    # Rows from before tiers keep the pricing they billed with (RateCard's legacy rules);
    # an import of the price map gives their models new rows with the vendors' rules.
    ModelPrice.objects.update(rules={"legacy": True})
    rates = []
    for price in ModelPrice.objects.all().iterator():
        for column, kind in BATCH_COLUMNS.items():
            value = getattr(price, column)
            if value is not None:
                rates.append(
                    PriceRate(
                        price_id=price.pk,
                        service_tier="batch",
                        token_kind=kind,
                        above_tokens=0,
                        off_peak=False,
                        per_million=value,
                    )
                )
    PriceRate.objects.bulk_create(rates, batch_size=1000)


def rates_to_batch_columns(apps, schema_editor):
    ModelPrice = apps.get_model("finops", "ModelPrice")
    PriceRate = apps.get_model("finops", "PriceRate")
    kinds = {kind: column for column, kind in BATCH_COLUMNS.items()}
    for rate in PriceRate.objects.filter(service_tier="batch", above_tokens=0, off_peak=False):
        if rate.token_kind in kinds:
            ModelPrice.objects.filter(pk=rate.price_id).update(
                **{kinds[rate.token_kind]: rate.per_million}
            )


class Migration(migrations.Migration):
    dependencies = [
        ("finops", "0003_tenant_cap_override"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelprice",
            name="cache_write_1h_per_million",
            field=finops.fields.ExactDecimalField(
                blank=True, decimal_places=18, max_digits=30, null=True
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="mode",
            field=models.CharField(
                choices=[
                    ("chat", "Chat / completion (per token)"),
                    ("embedding", "Embedding (per input token)"),
                    ("rerank", "Rerank / search (per query)"),
                ],
                default="chat",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="off_peak_windows",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Off-peak windows, as LiteLLM writes them: [{"hours_utc": ["16:30-00:30"], "weekdays": [1, 2, 3, 4, 5]}] (UTC hours, ISO weekdays; no weekdays: every day).',
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="per_query",
            field=finops.fields.ExactDecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one rerank or search query (unit), not per million.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="modelprice",
            name="batch_discount_percent",
            field=finops.fields.ExactDecimalField(
                blank=True,
                decimal_places=3,
                help_text="Batch rates this row states no batch price for: this percent off the standard rate (before the vendor's rule).",
                max_digits=6,
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="PriceRate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "service_tier",
                    models.CharField(
                        choices=[
                            ("standard", "Standard"),
                            ("batch", "Batch"),
                            ("flex", "Flex"),
                            ("priority", "Priority"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "token_kind",
                    models.CharField(
                        choices=[
                            ("input", "input"),
                            ("cached_input", "cached input"),
                            ("cache_write", "cache write, 5 min"),
                            ("cache_write_1h", "cache write, 1 h"),
                            ("output", "output"),
                            ("reasoning", "reasoning"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "above_tokens",
                    models.BigIntegerField(
                        default=0,
                        help_text="Applies to prompts of more than this many tokens (0: any).",
                    ),
                ),
                (
                    "off_peak",
                    models.BooleanField(
                        default=False, help_text="Applies inside off-peak windows."
                    ),
                ),
                ("per_million", finops.fields.ExactDecimalField(decimal_places=18, max_digits=30)),
                (
                    "price",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="rates",
                        to="finops.modelprice",
                    ),
                ),
            ],
            options={
                "ordering": ["price", "service_tier", "above_tokens", "off_peak", "token_kind"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("price", "service_tier", "token_kind", "above_tokens", "off_peak"),
                        name="price_rate_unique",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            django.db.models.lookups.GreaterThanOrEqual(
                                django.db.models.functions.comparison.Cast(
                                    "per_million",
                                    models.DecimalField(decimal_places=30, max_digits=48),
                                ),
                                0,
                            ),
                            ("above_tokens__gte", 0),
                        ),
                        name="price_rate_not_negative",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="modelprice",
            name="rules",
            field=models.JSONField(
                blank=True,
                help_text="The vendor's rules in force when the row was created, frozen with it, "
                "so that a row that priced events never changes its rates.",
                null=True,
            ),
        ),
        migrations.RunPython(batch_columns_to_rates, rates_to_batch_columns),
        migrations.RemoveField(
            model_name="modelprice",
            name="batch_cache_write_per_million",
        ),
        migrations.RemoveField(
            model_name="modelprice",
            name="batch_cached_input_per_million",
        ),
        migrations.RemoveField(
            model_name="modelprice",
            name="batch_input_per_million",
        ),
        migrations.RemoveField(
            model_name="modelprice",
            name="batch_output_per_million",
        ),
    ]
