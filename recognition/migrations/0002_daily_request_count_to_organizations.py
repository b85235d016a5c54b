from django.db import migrations


class Migration(migrations.Migration):
    """The request-count table now belongs to organizations (its 0003 took it over in place)."""

    dependencies = [
        ("recognition", "0001_daily_request_count"),
        ("organizations", "0003_daily_request_count"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="DailyRequestCount")],
                                            database_operations=[]),
    ]
